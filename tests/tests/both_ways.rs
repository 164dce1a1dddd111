//! One plugin, two builds: a shipped plugin written with the SDK
//! (`#[hookimpl] impl AppHooks`, `export_plugin!`) loaded by the real app
//! once as the native library the workspace builds, once as the
//! WebAssembly component the same source builds for wasm32-wasip2, alone
//! in its plugin folder; the same test body runs against each, on SQLite
//! and PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use e2e_tests::receiver::Receiver;
use e2e_tests::*;
use hookspecs::hmac::{Hmac, Mac};
use hookspecs::sha2::Sha256;
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

/// The real app with plugin `name` alone in its plugin folder, built as
/// `build`.
fn start(backend: Backend, name: &'static str, build: Build) -> (TestApp, tempfile::TempDir) {
    let (options, folder) = options(name, build, "", "");
    let app = TestApp::start_with(backend, options);
    loaded(&app, name, build);
    (app, folder)
}

/// A plugin folder with plugin `name` alone in it, built as `build`.
fn plugin_folder(name: &'static str, build: Build) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    add(folder.path(), name, build);
    folder
}

/// Puts plugin `name`, built as `build`, in the plugin folder `folder`.
fn add(folder: &Path, name: &'static str, build: Build) {
    match build {
        Build::Native => {
            // The crate's manifest: the app takes its library from beside
            // its binary, where `cargo build` put it.
            let crate_dir = folder.join(format!("app_plugin_{name}"));
            std::fs::create_dir_all(&crate_dir).unwrap();
            std::fs::copy(
                source(name).join("Cargo.toml"),
                crate_dir.join("Cargo.toml"),
            )
            .unwrap();
        }
        Build::Component => {
            std::fs::copy(
                workspace_component(name),
                folder.join(format!("app_plugin_{name}.wasm")),
            )
            .unwrap();
        }
    }
}

/// The options of an app with plugin `name` alone in its plugin folder,
/// built as `build`, and `config` (TOML), and the folder; `sandbox`: more
/// lines of the component's `[plugins.<name>.sandbox]` (its `hosts`).
fn options(
    name: &'static str,
    build: Build,
    config: &str,
    sandbox: &str,
) -> (Options, tempfile::TempDir) {
    let folder = plugin_folder(name, build);
    // A call's time limit counts the nested calls it makes (the services,
    // the hooks they fire): the depth test nests 64 deep, on a machine
    // that may be loaded.
    let config = match build {
        Build::Native => config.to_owned(),
        Build::Component => {
            format!("{config}\n[plugins.{name}.sandbox]\ntime_limit_ms = 20000\n{sandbox}\n")
        }
    };
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .config(&config);
    (options, folder)
}

/// Plugin `name`'s entry in the load report.
fn entry(app: &TestApp, name: &str) -> serde_json::Value {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    report["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no plugin {name} in {report}"))
}

/// Checks that plugin `name` was loaded, as `build`.
fn loaded(app: &TestApp, name: &str, build: Build) {
    let entry = entry(app, name);
    assert_eq!(entry["status"], "loaded", "{build:?}: {entry}");
    let kind = match build {
        Build::Native => "native",
        Build::Component => "component",
    };
    assert_eq!(entry["kind"], kind, "{entry}");
}

fn space(app: &TestApp, name: &str, access: &str, role: &str) -> i64 {
    sub_space(app, name, access, None, role)
}

fn sub_space(app: &TestApp, name: &str, access: &str, parent: Option<i64>, role: &str) -> i64 {
    let body = json!({"name": name, "access": access, "parent_id": parent, "default_role": role});
    id(&expect(201, app.post("/api/spaces", ADMIN, body)))
}

/// Puts `user` in `space` with `role` (200 for a new membership or a changed one).
fn put(app: &TestApp, space: i64, user: i64, role: &str) {
    let path = format!("/api/spaces/{space}/members/{user}");
    let (status, body) = app.put(&path, ADMIN, json!({"role": role}));
    assert!(status == 200 || status == 201, "{status}: {body}");
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

/// parent_access: a new member of a space joins each ancestor it is not in
/// yet, with the ancestor's default role (each membership it adds fires
/// its hook again, a nested call); an ancestor it is already in stops it.
fn parent_access(build: Build, backend: Backend) {
    let (app, _folder) = start(backend, "parent_access", build);
    let root = sub_space(&app, "root", "confidential", None, "reader");
    let mid = sub_space(&app, "mid", "on_request", Some(root), "contributor");
    let leaf = sub_space(&app, "leaf", "confidential", Some(mid), "space_manager");
    let ada = id(&app.create_user("ada"));
    // Already in root with a stronger role: parent_access must not touch it.
    put(&app, root, ada, "space_manager");
    put(&app, leaf, ada, "reader");
    assert_eq!(
        memberships(&app),
        [
            format!("leaf:{ada}:reader"),
            format!("mid:{ada}:contributor"),
            format!("root:{ada}:space_manager"),
        ]
    );
    // A top-level space has no ancestor: nothing more.
    let other = space(&app, "other", "confidential", "reader");
    put(&app, other, ada, "reader");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 4);
}

/// child_removal: a user removed from a space leaves every descendant
/// (each removal fires its hook again, a level down), not other spaces.
fn child_removal(build: Build, backend: Backend) {
    let (app, _folder) = start(backend, "child_removal", build);
    let root = sub_space(&app, "root", "confidential", None, "reader");
    let mid = sub_space(&app, "mid", "confidential", Some(root), "reader");
    let leaf = sub_space(&app, "leaf", "confidential", Some(mid), "reader");
    let other = space(&app, "other", "confidential", "reader");
    let ada = id(&app.create_user("ada"));
    let bob = id(&app.create_user("bob"));
    for s in [root, mid, leaf, other] {
        put(&app, s, ada, "reader");
    }
    put(&app, leaf, bob, "reader");
    expect(
        204,
        app.delete(&format!("/api/spaces/{root}/members/{ada}"), ADMIN),
    );
    assert_eq!(
        memberships(&app),
        [format!("leaf:{bob}:reader"), format!("other:{ada}:reader")]
    );
    // Deleting a user still works though removals cascade.
    put(&app, mid, bob, "reader");
    expect(204, app.delete(&format!("/api/users/{bob}"), ADMIN));
    assert_eq!(memberships(&app), [format!("other:{ada}:reader")]);
}

/// hello_world: greets at startup (its `on_plugins_loaded`, which also
/// adds its route), logs each new user, and tells the caller who they are.
fn hello_world(build: Build, backend: Backend) {
    let (app, _folder) = start(backend, "hello_world", build);
    app.proc
        .output
        .wait_for("the greeting", |out| out.contains("Hello, world!"));
    let me = expect(200, app.get("/plugins/hello_world/user", ADMIN));
    assert_eq!(
        (me["name"].as_str(), me["admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    expect_error(
        401,
        "unauthorized",
        app.get("/plugins/hello_world/user", None),
    );
    app.create_user("ada");
    app.proc.output.wait_for("the new user's line", |out| {
        out.contains("created user ada")
    });
}

/// audit_log, with tally (which vetoes `veto-*` after every other hook)
/// and api_keys (a user's key) beside it: its migrations make its table (a
/// component's checked by the host first); each change is recorded in the
/// operation's transaction, nothing of one rolled back; its admin route
/// lists them newest first, to the admin only.
fn audit_log(build: Build, backend: Backend) {
    let (options, folder) = options("audit_log", build, "", "");
    add(folder.path(), "tally", build);
    add(folder.path(), "api_keys", Build::Native);
    let app = TestApp::start_with(backend, options);
    loaded(&app, "audit_log", build);
    loaded(&app, "tally", build);
    loaded(&app, "api_keys", Build::Native);
    assert_eq!(
        app.db
            .column("SELECT name FROM plugin_audit_log_migrations"),
        ["entries"]
    );
    let ada = id(&app.create_user("ada"));
    let s = space(&app, "s", "confidential", "reader");
    put(&app, s, ada, "reader");
    // audit_log's hook ran, then tally's refused: the operation, its
    // entry included, rolls back.
    let vetoed = expect_error(
        409,
        "vetoed",
        app.post(
            "/api/users",
            ADMIN,
            json!({"username": "veto-vic", "email": "vic@example.org"}),
        ),
    );
    assert_eq!(vetoed["message"], "tally vetoes veto-vic");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    let page = expect(200, app.get("/plugins/audit_log/entries", ADMIN));
    let entries: Vec<(&str, &str, &str)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default();
            (text("kind"), text("actor"), text("entity"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                "membership_created",
                "admin",
                &*format!("space {s} user {ada}")
            ),
            ("space_created", "admin", &*format!("space {s}")),
            ("user_created", "admin", &*format!("user {ada}")),
        ]
    );
    let page = expect(
        200,
        app.get("/plugins/audit_log/entries?limit=1&offset=2", ADMIN),
    );
    assert_eq!(page["entries"][0]["kind"], "user_created");
    expect_error(
        422,
        "invalid",
        app.get("/plugins/audit_log/entries?limit=-1", ADMIN),
    );
    expect_error(
        401,
        "unauthorized",
        app.get("/plugins/audit_log/entries", None),
    );
    // An ordinary user's key does not read everyone's events.
    let key = expect(
        201,
        app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": ada})),
    );
    let key = key["key"].as_str().unwrap().to_owned();
    expect_error(
        403,
        "forbidden",
        app.get("/plugins/audit_log/entries", Some(&key)),
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM plugin_audit_log_entries"),
        3
    );
    assert_eq!(
        app.db.column("SELECT username FROM plugin_tally_entries"),
        ["ada"]
    );
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

/// The webhooks plugin POSTs each committed user once, signed with its
/// secret, keyed by its event; as a component through the host, to the
/// receiver's host, which it is granted.
fn webhooks(build: Build, backend: Backend) {
    const SECRET: &str = "both-ways";
    let receiver = Receiver::start();
    let host = receiver
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("an http:// receiver");
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\n",
        receiver.url
    );
    let (options, _folder) = options("webhooks", build, &config, &format!("hosts = [{host:?}]"));
    let app = TestApp::start_with(backend, options);
    loaded(&app, "webhooks", build);
    for name in ["ada", "bob"] {
        app.create_user(name);
    }
    let delivered = || {
        app.db.count(
            "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'webhooks' \
             AND status = 'delivered'",
        )
    };
    wait_until("two deliveries", || delivered() == 2);
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let mut keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    let mut events = app.db.column("SELECT event_key FROM outbox_events");
    events.sort_unstable();
    assert_eq!(keys, events);
    let mut names: Vec<&str> = got
        .iter()
        .filter_map(|r| r.json["data"]["username"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ada", "bob"]);
    for r in &got {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&r.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.signature, format!("sha256={hex}"));
        assert_eq!(r.json["event"], "user.created");
        assert_eq!(r.json["id"], r.key.as_str());
        assert_eq!(r.attempt, "1");
    }
}

/// A component sends through the host, whose client trusts the
/// platform's roots only: a `ca_file` is refused at load, the setting
/// named in the app's log.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn webhooks_component_refuses_a_ca_file() {
    let config = "[plugins.webhooks]\nurl = \"http://127.0.0.1:9/x\"\nca_file = \"ca.pem\"\n";
    let (options, _folder) = options("webhooks", Build::Component, config, "");
    let app = TestApp::start_with(Backend::Sqlite, options);
    let status = entry(&app, "webhooks")["status"].to_string();
    assert!(
        status.starts_with("\"failed: its manifest failed"),
        "{status}"
    );
    let why = "`ca_file` in [plugins.webhooks] cannot be used by a component";
    app.proc
        .output
        .wait_for("the refusal's log line", |out| out.contains(why));
}

/// autoinvite on three instances sharing one PostgreSQL database, eight
/// clients at once creating users and open spaces: every operation
/// answers 201 (the losers of a race re-run, the component's hook with
/// them), and every user is in every open space, once.
fn autoinvite_on_three_instances(build: Build) {
    let db = Arc::new(TestDb::create(
        Backend::postgres().expect("TEST_DATABASE_URL"),
    ));
    // Retries enough that contention never turns into 503s.
    let (options, _folder) = options(
        "autoinvite",
        build,
        "[database]\nmax_attempts = 40\nbackoff_ms = 2\n",
        "",
    );
    let apps: Vec<TestApp> = (0..3)
        .map(|_| TestApp::start_on(db.clone(), &options))
        .collect();
    loaded(&apps[0], "autoinvite", build);
    let clients: Vec<Client> = apps.iter().map(|a| a.client.clone()).collect();
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (client, start) = (clients[i % 3].clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..6)
                    .map(|k| {
                        if i % 4 == 0 {
                            let space = json!({"name": format!("open-{i}-{k}"), "access": "open"});
                            client.post("/api/spaces", ADMIN, space)
                        } else {
                            let name = format!("u{i}x{k}");
                            let user =
                                json!({"username": name, "email": format!("{name}@example.org")});
                            client.post("/api/users", ADMIN, user)
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for (status, body) in thread.join().unwrap() {
            assert_eq!(status, 201, "{body}");
        }
    }
    let (users, spaces) = (
        db.count("SELECT COUNT(*) FROM users"),
        db.count("SELECT COUNT(*) FROM spaces"),
    );
    assert_eq!((users, spaces), (36, 12));
    assert_eq!(db.count("SELECT COUNT(*) FROM memberships"), users * spaces);
    let distinct = "SELECT COUNT(*) FROM (SELECT DISTINCT space_id, user_id FROM memberships) d";
    assert_eq!(db.count(distinct), users * spaces);
    for app in &apps {
        let report = expect(200, app.get("/api/admin/plugins", ADMIN));
        assert_eq!(
            report["operations"]["gave_up"], 0,
            "{}",
            report["operations"]
        );
    }
}

#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn autoinvite_native_on_three_instances() {
    autoinvite_on_three_instances(Build::Native);
}

#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn autoinvite_component_on_three_instances() {
    autoinvite_on_three_instances(Build::Component);
}

e2e! {
    fn autoinvite_native(backend) {
        autoinvite(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn autoinvite_component(backend) {
        autoinvite(Build::Component, backend);
    }

    fn parent_access_native(backend) {
        parent_access(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn parent_access_component(backend) {
        parent_access(Build::Component, backend);
    }

    fn child_removal_native(backend) {
        child_removal(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn child_removal_component(backend) {
        child_removal(Build::Component, backend);
    }

    fn hello_world_native(backend) {
        hello_world(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn hello_world_component(backend) {
        hello_world(Build::Component, backend);
    }

    fn webhooks_native(backend) {
        webhooks(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn webhooks_component(backend) {
        webhooks(Build::Component, backend);
    }

    fn audit_log_native(backend) {
        audit_log(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn audit_log_component(backend) {
        audit_log(Build::Component, backend);
    }

    fn notes_native(backend) {
        let (app, _folder) = notes(Build::Native, backend);
        notes_routes(&app);
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
        notes_routes(&app);
        // A handler's trap is that request's 500; the process lives and
        // the next request gets a fresh instance.
        let trapped = expect_error(500, "hook_failed", app.get("/plugins/notes/panic", None));
        let logged = logged_500(&app, &trapped);
        assert!(logged.contains("it trapped"), "{logged}");
        assert_eq!(expect(200, app.get("/plugins/notes/count", ADMIN))["notes"], 9);
        // A handler that never ends is interrupted at the plugin's time
        // limit (20 s here): a 504, and the app serves on.
        let asked = std::time::Instant::now();
        let overran = expect_error(504, "hook_timeout", app.get("/plugins/notes/spin", None));
        let took = asked.elapsed();
        assert!(
            (20..30).contains(&took.as_secs()),
            "answered after {took:?}: {overran}"
        );
        assert_eq!(expect(200, app.get("/plugins/notes/count", ADMIN))["notes"], 9);
    }
}

/// The notes fixture's routes, added by its `on_plugins_loaded` (in a
/// component: run in the component, each request in an instance of its
/// own): path parameters, the query string, the body, the caller's
/// identity and guards; its own table and the services in the request's
/// transaction, which an error rolls back.
fn notes_routes(app: &TestApp) {
    let seen = |path: &str, token| expect(200, app.get(&format!("/plugins/notes{path}"), token));
    let before = app.db.count("SELECT COUNT(*) FROM plugin_notes_seen");
    app.create_user("rita");
    assert_eq!(
        seen("/seen/rita?greeting=hi", None),
        json!({"username": "rita", "seen": 1, "viewer": null, "greeting": "hi"})
    );
    assert_eq!(seen("/seen/bob", ADMIN)["viewer"], "admin");
    assert_eq!(seen("/seen/bob", ADMIN)["seen"], 0);
    let users = app.db.count("SELECT COUNT(*) FROM users");
    let post =
        |query: &str, body, token| app.post(&format!("/plugins/notes/seen{query}"), token, body);
    expect_error(
        401,
        "unauthorized",
        post("", json!({"username": "zed"}), None),
    );
    assert_eq!(
        expect(201, post("", json!({"username": "zed"}), ADMIN)),
        json!({"noted": 1, "users": users})
    );
    let failed = expect_error(
        409,
        "asked_to_fail",
        post("?fail=1", json!({"username": "zed"}), ADMIN),
    );
    assert_eq!(failed["message"], "as asked");
    let invalid = expect_error(422, "invalid", post("", json!({"name": "zed"}), ADMIN));
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .starts_with("username: missing field"),
        "{invalid}"
    );
    expect_error(401, "unauthorized", app.get("/plugins/notes/count", None));
    assert_eq!(seen("/count", ADMIN), json!({"notes": before + 2}));
    assert_eq!(seen("/seen/zed", None)["seen"], 1);
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
        std::fs::copy(workspace_component("notes"), file).unwrap();
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

/// A route that clashes with another stops startup, naming both, whether
/// the plugin is native or a component (whose `on_plugins_loaded` ran in
/// the component).
fn route_clash(build: Build, backend: Backend) {
    let folder = plugin_folder("notes", build);
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .config("[plugins.notes]\nclash = true\n");
    let (status, output) = run_to_exit(&TestDb::create(backend), &options);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(
            "route GET /plugins/notes/seen/:name of `notes` clashes with \
             GET /plugins/notes/seen/:username of `notes`"
        ),
        "{output}"
    );
}

e2e! {
    fn a_route_clash_stops_startup_native(backend) {
        route_clash(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_route_clash_stops_startup_component(backend) {
        route_clash(Build::Component, backend);
    }
}

e2e! {
    /// A reload is the component's own startup: its `on_plugins_loaded`
    /// runs again, and its routes answer from the new version. A new
    /// version with other routes (here: none) replaces them as a whole.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_reloaded_component_keeps_its_routes_and_a_version_without_them_drops_them(backend) {
        let (app, folder) = start(backend, "notes", Build::Component);
        run_sql(&app, "CREATE TABLE plugin_notes_seen (username TEXT NOT NULL)");
        app.create_user("rita");
        let seen = |token| expect(200, app.get("/plugins/notes/seen/rita", token));
        assert_eq!(seen(None)["seen"], 1);
        let reload = || app.raw("POST", "/api/admin/plugins/notes/reload", ADMIN, None);
        assert_eq!(
            expect(200, reload()),
            json!({"plugin": "notes", "reloaded": true, "generation": 2})
        );
        assert_eq!(seen(ADMIN)["seen"], 1);
        app.create_user("rita-2");
        assert_eq!(expect(200, app.get("/plugins/notes/count", ADMIN))["notes"], 2);
        // A "new version" without the routes: its routes are gone.
        let file = folder.path().join("app_plugin_notes.wasm");
        let partial = file.with_extension("partial");
        std::fs::copy(workspace_component("parent_access"), &partial).unwrap();
        std::fs::rename(&partial, &file).unwrap();
        assert_eq!(
            expect(200, reload()),
            json!({"plugin": "notes", "reloaded": true, "generation": 3})
        );
        expect_error(404, "not_found", app.get("/plugins/notes/seen/rita", None));
        expect_error(404, "not_found", app.get("/plugins/notes/count", ADMIN));
        let report = expect(200, app.get("/api/admin/plugins", ADMIN));
        let routes = report["routes"].as_array().unwrap();
        assert!(routes.iter().all(|r| r["plugin"] != "notes"), "{routes:?}");
    }
}

/// The tally fixture as a component at `stage` (`b'1'`, `b'2'`, `b'3'`: see
/// its docs): its binary with the stage rewritten, a new version without
/// another build.
fn tally_at(stage: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(workspace_component("tally")).unwrap();
    let marker = b"tally-stage:1";
    let found: Vec<usize> = (0..bytes.len().saturating_sub(marker.len()))
        .filter(|&at| &bytes[at..at + marker.len()] == marker)
        .collect();
    assert_eq!(found.len(), 1, "the stage is in the component once");
    bytes[found[0] + marker.len() - 1] = stage;
    bytes
}

/// Puts `component` in `folder` as the plugin tally, whole at once (a
/// reload never reads half of it).
fn put_tally(folder: &Path, component: &[u8]) {
    let file = folder.join("app_plugin_tally.wasm");
    let partial = file.with_extension("partial");
    std::fs::write(&partial, component).unwrap();
    std::fs::rename(&partial, &file).unwrap();
}

/// The tables (`table`) or indexes (`index`) named `plugin_tally_*` in the
/// app's database, sorted (PostgreSQL's include its primary keys').
fn tally_schema(app: &TestApp, backend: Backend, kind: &str) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT name FROM sqlite_master WHERE type = '{kind}' \
             AND name LIKE 'plugin\\_tally\\_%' ESCAPE '\\' ORDER BY name"
        ),
        Backend::Postgres => format!(
            "SELECT relname::TEXT FROM pg_class WHERE relkind = '{}' \
             AND relname LIKE 'plugin\\_tally\\_%' ESCAPE '\\' ORDER BY relname",
            if kind == "table" { 'r' } else { 'i' }
        ),
    };
    app.db.column(&sql)
}

/// What the host says of tally's migration 2 at stage 3.
const OWNERS_REFUSED: &str = "its migration 2 (owners) is refused: its SQLite text: the statement \
                              references the table `users`, which is not one of the plugin's own \
                              (plugin_tally_*)";

e2e! {
    /// A component whose migration references a table not its own is
    /// refused at load, the table named, before any of its migrations runs;
    /// the app starts with the others.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_component_whose_migration_touches_another_table_is_refused_at_load(backend) {
        let folder = plugin_folder("hello_world", Build::Component);
        put_tally(folder.path(), &tally_at(b'3'));
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
        let app = TestApp::start_with(backend, options);
        loaded(&app, "hello_world", Build::Component);
        assert_eq!(entry(&app, "tally")["status"], format!("failed: {OWNERS_REFUSED}"));
        // Not even its migration 1, nor its history table.
        assert_eq!(tally_schema(&app, backend, "table"), Vec::<String>::new());
        app.create_user("ada");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    }

    /// A reload is checked and migrated as a load: a new version whose
    /// migration is refused is refused (the running one, and its schema,
    /// stay); one adding a migration has it applied before it runs.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_component_reload_applies_its_new_migration_and_one_refused_keeps_the_old_version(backend) {
        let folder = tempfile::tempdir().unwrap();
        put_tally(folder.path(), &tally_at(b'1'));
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
        let app = TestApp::start_with(backend, options);
        loaded(&app, "tally", Build::Component);
        let history = "SELECT version || ' ' || name FROM plugin_tally_migrations ORDER BY version";
        assert_eq!(app.db.column(history), ["1 entries"]);
        app.create_user("ada");
        let reload = || app.raw("POST", "/api/admin/plugins/tally/reload", ADMIN, None);

        put_tally(folder.path(), &tally_at(b'3'));
        let refused = expect_error(422, "reload_refused", reload());
        assert_eq!(
            refused["message"],
            format!(
                "the new version of `tally` was refused and the previous one (generation 1) \
                 runs on: {OWNERS_REFUSED}"
            )
        );
        assert_eq!(entry(&app, "tally")["generation"], 1);
        assert_eq!(tally_schema(&app, backend, "table"), ["plugin_tally_entries", "plugin_tally_migrations"]);
        assert_eq!(app.db.column(history), ["1 entries"]);
        app.create_user("bob");
        let tallied = "SELECT username FROM plugin_tally_entries ORDER BY id";
        assert_eq!(app.db.column(tallied), ["ada", "bob"]);

        put_tally(folder.path(), &tally_at(b'2'));
        assert_eq!(
            expect(200, reload()),
            json!({"plugin": "tally", "reloaded": true, "generation": 2})
        );
        assert_eq!(app.db.column(history), ["1 entries", "2 notes"]);
        assert!(
            tally_schema(&app, backend, "index").contains(&"plugin_tally_by_name".to_owned()),
            "{:?}",
            tally_schema(&app, backend, "index")
        );
        app.create_user("cy");
        assert_eq!(app.db.column(tallied), ["ada", "bob", "cy"]);
        assert_eq!(
            app.db.column("SELECT note FROM plugin_tally_entries ORDER BY id"),
            ["none", "none", "none"]
        );
    }
}
