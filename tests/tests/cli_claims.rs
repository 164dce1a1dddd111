//! The configuration and command-line claims of README.md ("Run the app",
//! "Package it", "Configuration", "Write a plugin") and of `app --help`,
//! taken to their edges: which file is read, what overrides what, what a
//! bad value or an unknown key does, and what each command prints, exits
//! with and leaves in the database. SQLite only: nothing here depends on
//! the database engine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::receiver::{Answer, Receiver};
use e2e_tests::*;

// ---------------------------------------------------------------- helpers

/// `options`' command against `db`, without the variables in `remove` (the
/// harness always sets `APP_LISTEN`, `APP_DATA_DIR` and `APP_ADMIN_TOKEN`).
fn command(db: &TestDb, options: &Options, remove: &[&str]) -> Command {
    let mut cmd = options.command(db);
    for var in remove {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs to its exit, without the variables in `remove`.
fn exit_without(db: &TestDb, options: &Options, remove: &[&str]) -> (ExitStatus, String) {
    Proc::spawn(command(db, options, remove)).finish()
}

/// Starts the app, without the variables in `remove`.
fn start_without(db: Arc<TestDb>, options: &Options, remove: &[&str]) -> TestApp {
    let proc = Proc::spawn(command(&db, options, remove));
    TestApp::wait_up(proc, db)
}

/// Stops the app with SIGTERM: its exit status and everything it printed
/// (the log flushed: the access log's lines included).
fn stop(app: TestApp) -> (ExitStatus, String) {
    let TestApp { proc, .. } = app;
    proc.signal("TERM");
    proc.finish()
}

/// A failed run's output, checked: not successful, never listened, and the
/// error said once on stderr as `error: ...`.
#[track_caller]
fn refused(status: ExitStatus, output: &str) {
    assert!(!status.success(), "it did not fail: {output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(!output.contains("listening on http://"), "{output}");
    assert_eq!(
        output.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "one `error:` line: {output}"
    );
}

/// The status of a request to `path` with `token`.
fn status_with(app: &TestApp, path: &str, token: &str) -> u16 {
    app.get(path, Some(token)).0
}

/// Runs `sql` on the SQLite file at `file`: every row's first column.
fn sqlite_column(file: &Path, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(query_column(&format!("sqlite://{}", file.display()), sql))
}

/// The `plugins list` line of plugin `name` (a line starting with it).
#[track_caller]
fn list_line(output: &str, name: &str) -> String {
    output
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{output}"))
        .to_owned()
}

/// The real app with the shipped plugins and `config`.
fn shipped(config: &str) -> Options {
    Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .config(config)
}

/// The address after `listening on http://` in `output`.
fn listening_address(output: &str) -> String {
    let at = output.find("listening on http://").expect("listening on");
    output[at + "listening on http://".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Waits (bounded) until `proc` listens or exits: `Ok(base URL)` or
/// `Err(exit status)`.
fn listens_or_exits(proc: &mut Proc) -> Result<String, ExitStatus> {
    let start = Instant::now();
    loop {
        let text = proc.output.text();
        if text.contains("listening on http://") && text.contains('\n') {
            return Ok(format!("http://{}", listening_address(&text)));
        }
        if let Some(status) = proc.child.try_wait().unwrap() {
            return Err(status);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "neither listened nor exited:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------- where config is

/// README, "Run the app": "starts the service on `http://127.0.0.1:8080`
/// with an embedded SQLite database in `data/app.db` (created, migrated,
/// WAL) ... On first start it writes an admin token to `data/admin-token`
/// and prints how to use it"; "one line names the database in use".
/// Started again, the same token is read back, not generated anew.
#[test]
fn the_default_data_dir_holds_a_wal_database_and_a_generated_admin_token() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let unset = ["APP_DATA_DIR", "APP_ADMIN_TOKEN"];
    let app = start_without(db.clone(), &Options::default(), &unset);
    let data = db.dir.path().join("data");
    let file = data.join("admin-token");
    let token = std::fs::read_to_string(&file).unwrap();
    assert!(token.len() >= 32, "a short token: {token:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the token file is readable by others: {mode:o}"
        );
    }
    assert_eq!(status_with(&app, "/api/users", token.trim()), 200);
    assert_eq!(status_with(&app, "/api/users", ADMIN_TOKEN), 401);
    assert!(!db.dir.path().join("app.db").exists());
    let database = data.join("app.db");
    assert_eq!(sqlite_column(&database, "PRAGMA journal_mode"), ["wal"]);
    assert!(
        sqlite_column(&database, "SELECT COUNT(*) FROM _sqlx_migrations")[0] != "0",
        "not migrated"
    );
    let base = app.base.trim_start_matches("http://").to_owned();
    let (status, log) = stop(app);
    assert!(status.success(), "{log}");
    assert!(log.contains("database: SQLite, data/app.db"), "{log}");
    assert!(
        log.contains("generated an admin token in data/admin-token"),
        "{log}"
    );
    let how = format!(
        "authenticate with: curl -H \"Authorization: Bearer $(cat data/admin-token)\" http://{base}/api/users"
    );
    assert!(log.contains(&how), "{how} in:\n{log}");

    // Again: the token is the same file's, read back.
    let again = start_without(db.clone(), &Options::default(), &unset);
    assert_eq!(status_with(&again, "/api/users", token.trim()), 200);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    let (_, log) = stop(again);
    assert!(!log.contains("generated an admin token"), "{log}");
}

/// README, "Configuration": `admin_token = "change-me" # default: generated
/// into data_dir/admin-token`, and "Environment variables override the
/// file: ... `APP_ADMIN_TOKEN`". A configured token writes no file and
/// prints no `authenticate with` hint.
#[test]
fn app_admin_token_overrides_the_files_token_and_a_configured_one_writes_no_file() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let options = Options::default().config("admin_token = \"from-the-file\"\n");
    let app = TestApp::start_on(db.clone(), &options);
    assert_eq!(status_with(&app, "/api/users", ADMIN_TOKEN), 200);
    assert_eq!(status_with(&app, "/api/users", "from-the-file"), 401);
    let (_, log) = stop(app);
    assert!(!log.contains("authenticate with"), "{log}");

    let app = start_without(db.clone(), &options, &["APP_ADMIN_TOKEN"]);
    assert_eq!(status_with(&app, "/api/users", "from-the-file"), 200);
    assert_eq!(status_with(&app, "/api/users", ADMIN_TOKEN), 401);
    let (_, log) = stop(app);
    assert!(!log.contains("authenticate with"), "{log}");
    assert!(!db.dir.path().join("admin-token").exists());
}

/// README, "Configuration": "A TOML file, `app.toml` in the working
/// directory or the file named by `APP_CONFIG`". Named, `APP_CONFIG` is
/// the file: an `app.toml` beside it (even a broken one) is not read.
#[test]
fn app_toml_in_the_working_directory_is_read_unless_app_config_names_another() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let app_toml = db.dir.path().join("app.toml");
    std::fs::write(&app_toml, "admin_token = \"from-app-toml\"\n").unwrap();
    let app = start_without(db.clone(), &Options::default(), &["APP_ADMIN_TOKEN"]);
    assert_eq!(status_with(&app, "/api/users", "from-app-toml"), 200);
    drop(app);

    std::fs::write(&app_toml, "this is [not toml\n").unwrap();
    let options = Options::default().config("admin_token = \"from-app-config\"\n");
    let app = start_without(db.clone(), &options, &["APP_ADMIN_TOKEN"]);
    assert_eq!(status_with(&app, "/api/users", "from-app-config"), 200);
    assert_eq!(status_with(&app, "/api/users", "from-app-toml"), 401);
    drop(app);

    // Without APP_CONFIG the broken app.toml is read, and stops startup
    // naming it, before any database is created.
    let (status, output) = exit_without(&db, &Options::default(), &["APP_ADMIN_TOKEN"]);
    refused(status, &output);
    assert!(output.contains("in config file app.toml"), "{output}");
}

/// README, "Configuration": "A TOML file, ... the file named by
/// `APP_CONFIG`". A named file that is not there is an error naming it,
/// not a silent start on the defaults.
#[test]
fn an_app_config_naming_a_missing_file_stops_startup_naming_it() {
    let db = TestDb::create(Backend::Sqlite);
    let missing = db.dir.path().join("nowhere.toml");
    let options = Options::default().env("APP_CONFIG", missing.to_str().unwrap());
    let (status, output) = run_to_exit(&db, &options);
    refused(status, &output);
    assert!(
        output.contains(&format!("reading config file {}", missing.display())),
        "{output}"
    );
    assert!(
        !db.dir.path().join("app.db").exists(),
        "a database was created"
    );
}

/// README, "Configuration": "Environment variables override the file:
/// `APP_LISTEN`, `APP_DATA_DIR`, ..., `DATABASE_URL`"; the file's own
/// `listen`, `data_dir` and `database_url` hold without them.
#[test]
fn listen_data_dir_and_database_url_come_from_the_file_unless_the_environment_says_otherwise() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let dir = db.dir.path();
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n",
        dir.join("file-data").display(),
        dir.join("file.db").display()
    );
    let env_db = dir.join("env.db");
    let options = Options::default()
        .config(&config)
        .env("APP_LISTEN", "127.0.0.2:0")
        .env("APP_DATA_DIR", dir.join("env-data").to_str().unwrap())
        .env(
            "DATABASE_URL",
            &format!("sqlite://{}?mode=rwc", env_db.display()),
        );
    let app = TestApp::start_on(db.clone(), &options);
    assert!(app.base.starts_with("http://127.0.0.2:"), "{}", app.base);
    app.create_user("ada");
    let (_, log) = stop(app);
    assert!(
        log.contains(&format!("database: SQLite, {}", env_db.display())),
        "{log}"
    );
    assert_eq!(
        sqlite_column(&env_db, "SELECT username FROM users"),
        ["ada"]
    );
    assert!(dir.join("env-data").is_dir());
    assert!(!dir.join("file.db").exists() && !dir.join("file-data").exists());

    // The file alone.
    let options = Options::default().config(&config);
    let app = start_without(db.clone(), &options, &["APP_LISTEN", "APP_DATA_DIR"]);
    assert!(app.base.starts_with("http://127.0.0.1:"), "{}", app.base);
    assert!(!app.base.ends_with(":8080"), "{}", app.base);
    app.create_user("bob");
    drop(app);
    let file_db = dir.join("file.db");
    assert_eq!(
        sqlite_column(&file_db, "SELECT username FROM users"),
        ["bob"]
    );
    assert!(dir.join("file-data").is_dir());
}

/// README, "Configuration": "Environment variables override the file:
/// ... `APP_PLUGINS_DIR`" (over `[plugins] dir`, "where app_plugin_*
/// crates and prebuilt libraries are found").
#[test]
fn app_plugins_dir_overrides_the_files_plugin_folder() {
    let db = TestDb::create(Backend::Sqlite);
    let with_hello = folder_with(&["hello_world"]);
    let empty = tempfile::tempdir().unwrap();
    let config = format!("[plugins]\ndir = \"{}\"\n", with_hello.path().display());
    let list = Options::default()
        .real_app()
        .config(&config)
        .args(&["plugins", "list"]);
    let (status, output) = run_to_exit(&db, &list);
    assert!(status.success(), "{output}");
    assert!(
        list_line(&output, "hello_world").contains("loaded"),
        "{output}"
    );

    let list = list.env("APP_PLUGINS_DIR", empty.path().to_str().unwrap());
    let (status, output) = run_to_exit(&db, &list);
    assert!(status.success(), "{output}");
    assert!(
        !output.lines().any(|l| l.starts_with("hello_world")),
        "the file's folder was read: {output}"
    );
    assert!(
        output.contains("plugins: 0 loaded, 0 disabled, 0 failed"),
        "{output}"
    );
}

// ------------------------------------------------------ bad and unknown

/// README, "Configuration": the keys of the file, each optional. A key the
/// app does not know (a misspelling) is refused, naming it and the file,
/// rather than silently leaving its setting on the default.
#[test]
fn an_unknown_key_in_the_apps_own_tables_stops_startup_naming_it() {
    let db = TestDb::create(Backend::Sqlite);
    for (config, key) in [
        ("listn = \"127.0.0.1:0\"\n", "listn"),
        ("[http]\nbody_limt = 100\n", "body_limt"),
        ("[database]\nmax_attempt = 3\n", "max_attempt"),
        ("[deliveries.webhooks]\nlease_ms = 100\n", "lease_ms"),
    ] {
        let (status, output) = run_to_exit(&db, &Options::default().config(config));
        refused(status, &output);
        assert!(output.contains("in config file"), "{config}: {output}");
        assert!(output.contains(&format!("`{key}`")), "{config}: {output}");
        assert!(
            !db.dir.path().join("app.db").exists(),
            "{config}: a database was created"
        );
    }
}

/// README, "Configuration": `[deliveries] max_attempts = 8 # then the
/// delivery is dead`: a misspelt key of `[deliveries]` itself (not a
/// plugin's table) is refused naming the key, like one of `[http]`.
#[test]
fn a_misspelt_key_of_the_deliveries_table_stops_startup_naming_it() {
    let db = TestDb::create(Backend::Sqlite);
    let (status, output) = run_to_exit(
        &db,
        &Options::default().config("[deliveries]\nmax_attempt = 3\n"),
    );
    refused(status, &output);
    assert!(
        output.contains("max_attempt"),
        "the key is not named: {output}"
    );
}

/// README, "Configuration": `batch = 200 # events claimed at once per
/// plugin (at most 1000)`; `listen = "127.0.0.1:8080"`; `body_limit =
/// 1048576 # bytes`. A value out of its range or of the wrong type stops
/// startup naming what is wrong; the limit itself is accepted.
#[test]
fn a_bad_value_stops_startup_naming_it_and_the_batch_limit_is_inclusive() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    for (config, why) in [
        (
            "[deliveries]\nbatch = 1001\n",
            "batch = 1001 is above its limit of 1000",
        ),
        ("listen = \"nowhere\"\n", "listen"),
        ("[http]\nbody_limit = -1\n", "body_limit"),
        ("[plugins]\ndisabled = \"hello_world\"\n", "disabled"),
        ("[deliveries]\nordered = \"yes\"\n", "ordered"),
    ] {
        let (status, output) = run_to_exit(&db, &Options::default().config(config));
        refused(status, &output);
        assert!(output.contains(why), "{config}: {why} in {output}");
        assert!(
            !db.dir.path().join("app.db").exists(),
            "{config}: a database was created"
        );
    }
    let app = TestApp::start_on(
        db,
        &Options::default().config("[deliveries]\nbatch = 1000\n"),
    );
    expect(200, app.get("/health", None));
}

/// README, "Configuration": "Environment variables override the file:
/// `APP_LISTEN`, ..., `DATABASE_URL` (a `postgres://` URL selects
/// PostgreSQL ...)"; `APP_ADMIN_TOKEN`. A value that cannot be used stops
/// startup naming the variable.
#[test]
fn a_bad_environment_value_stops_startup_naming_the_variable() {
    let db = TestDb::create(Backend::Sqlite);
    let (status, output) = run_to_exit(&db, &Options::default().env("APP_LISTEN", "nowhere"));
    refused(status, &output);
    assert!(
        output.contains("APP_LISTEN=\"nowhere\" is not an address like 127.0.0.1:8080"),
        "{output}"
    );
    let (status, output) = run_to_exit(
        &db,
        &Options::default().env("DATABASE_URL", "mysql://db.example.org/app"),
    );
    refused(status, &output);
    assert!(
        output.contains("DATABASE_URL must start with sqlite: or postgres:"),
        "{output}"
    );
    for empty in ["", "   "] {
        let (status, output) = run_to_exit(&db, &Options::default().env("APP_ADMIN_TOKEN", empty));
        refused(status, &output);
        assert!(output.contains("the admin token is empty"), "{output}");
    }
}

/// README, "Run the app": "On first start it writes an admin token to
/// `data/admin-token` and prints how to use it". A token file left empty
/// (a crash while writing it, a `touch`) must not become the admin token:
/// an empty configured token is refused, and no client can present an
/// empty bearer token, so the admin would be locked out without a word.
#[test]
fn an_empty_admin_token_file_is_not_used_as_the_token() {
    let db = TestDb::create(Backend::Sqlite);
    std::fs::write(db.dir.path().join("admin-token"), "\n").unwrap();
    let mut proc = Proc::spawn(command(&db, &Options::default(), &["APP_ADMIN_TOKEN"]));
    match listens_or_exits(&mut proc) {
        Err(status) => {
            let (_, output) = proc.finish();
            assert!(!status.success());
            assert!(output.contains("admin token"), "{output}");
        }
        Ok(base) => {
            let token = std::fs::read_to_string(db.dir.path().join("admin-token")).unwrap();
            let client = Client::new(base);
            let token = token.trim();
            assert!(
                !token.is_empty() && client.get("/api/users", Some(token)).0 == 200,
                "the app serves, but its admin token ({token:?}) can never be presented"
            );
        }
    }
}

// --------------------------------------------------- plugins' own tables

/// README, "Write a plugin": "An unknown key or a wrong type fails that
/// plugin with the key named; the app starts without it (unless it is
/// `required`)." Required, it stops startup, naming the key.
#[test]
fn an_invalid_table_of_a_required_plugin_stops_startup_naming_the_key() {
    let db = TestDb::create(Backend::Sqlite);
    for (table, why) in [
        ("greting = \"typo\"", "unknown key `greting`"),
        ("greeting = 5", "`greeting`: invalid type"),
        ("greeting = { text = \"hi\" }", "`greeting`: invalid type"),
    ] {
        let config =
            format!("[plugins]\nrequired = [\"hello_world\"]\n\n[plugins.hello_world]\n{table}\n");
        let (status, output) = run_to_exit(&db, &shipped(&config));
        refused(status, &output);
        assert!(
            output.contains("required plugin `hello_world` is not loaded")
                && output.contains("invalid configuration")
                && output.contains(why),
            "{table}: {output}"
        );
        assert!(!output.contains("Hello, world!"), "{output}");
    }
    // The same plugin, well configured and required: greets as told.
    let config = "[plugins]\nrequired = [\"hello_world\"]\n\n[plugins.hello_world]\ngreeting = \"Bonjour, tout le monde\"\n";
    let app = TestApp::start_with(Backend::Sqlite, shipped(config));
    assert_eq!(plugin_status(&app, "hello_world"), "loaded");
    let log = app.proc.output.text();
    assert!(log.contains("Bonjour, tout le monde"), "{log}");
    assert!(!log.contains("Hello, world!"), "{log}");
}

/// README, "Configuration": `disabled = ["audit"] # never opened`, and "A
/// table `[plugins.<name>]` for a plugin that is not there stops startup".
/// A disabled plugin is there: its table, even a wrong one, is not an
/// error, and is never given to it. Required and disabled at once, it
/// stops startup saying it is disabled.
#[test]
fn a_disabled_plugins_table_is_accepted_and_a_required_disabled_plugin_stops_startup() {
    let config =
        "[plugins]\ndisabled = [\"hello_world\"]\n\n[plugins.hello_world]\ngreting = \"typo\"\n";
    let app = TestApp::start_with(Backend::Sqlite, shipped(config));
    assert_eq!(plugin_status(&app, "hello_world"), "disabled");
    assert_eq!(plugin_status(&app, "audit_log"), "loaded");
    let log = app.proc.output.text();
    assert!(
        !log.contains("invalid configuration") && !log.contains("there is no plugin"),
        "{log}"
    );
    drop(app);

    let db = TestDb::create(Backend::Sqlite);
    let config = "[plugins]\ndisabled = [\"hello_world\"]\nrequired = [\"hello_world\"]\n";
    let (status, output) = run_to_exit(&db, &shipped(config));
    refused(status, &output);
    assert!(
        output.contains("required plugin `hello_world` is not loaded: disabled"),
        "{output}"
    );
}

/// README, "Configuration": `[plugins]` takes `dir`, `disabled`, `required`
/// and each plugin's table; "a misspelt table would otherwise leave its
/// plugin on its defaults". A misspelt key of `[plugins]` itself
/// (`disable` for `disabled`) must not be ignored either: it stops startup
/// naming it.
#[test]
fn a_misspelt_key_of_the_plugins_table_stops_startup() {
    let db = TestDb::create(Backend::Sqlite);
    let (status, output) = run_to_exit(&db, &shipped("[plugins]\ndisable = [\"hello_world\"]\n"));
    refused(status, &output);
    assert!(output.contains("disable"), "{output}");
    assert!(
        !output.contains("Hello, world!"),
        "hello_world was started: {output}"
    );
}

// ------------------------------------------------------------ plugins list

/// README, "Run the app": "`cargo run -- plugins list` prints the same
/// report without starting the server." Without starting it: no listener,
/// no database, no admin token written; and a configuration the server
/// refuses (a misspelt plugin table) is refused the same way.
#[test]
fn plugins_list_writes_nothing_and_refuses_what_serve_refuses() {
    let db = TestDb::create(Backend::Sqlite);
    let options = shipped("").args(&["plugins", "list"]);
    let (status, output) = exit_without(&db, &options, &["APP_ADMIN_TOKEN"]);
    assert!(status.success(), "{output}");
    assert!(!output.contains("listening on"), "{output}");
    for name in SHIPPED {
        list_line(&output, name);
    }
    assert!(
        output.contains("plugins: 7 loaded, 0 disabled, 0 failed"),
        "{output}"
    );
    let left: Vec<_> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("config-"))
        .collect();
    assert!(left.is_empty(), "plugins list wrote {left:?}");

    let options = shipped("[plugins.audit_lgo]\n").args(&["plugins", "list"]);
    let (status, output) = run_to_exit(&db, &options);
    refused(status, &output);
    assert!(
        output.contains("did you mean `[plugins.audit_log]`?"),
        "{output}"
    );
}

/// README, "Run the app": "`cargo run -- plugins list` prints what loading
/// finds ... without starting the server: it opens no database, so a
/// plugin's migrations and its `on_plugins_loaded` run, and can fail, only
/// when the server starts (its report and `GET /api/admin/plugins` say
/// so)". A plugin that fails as it starts is `failed` in the server's
/// report, and loaded as far as `plugins list` can tell.
#[test]
fn plugins_list_reports_the_load_and_the_server_its_start() {
    let dir = folder_with(&["faulty"]);
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
        .env("FAULTY_MODE", "startup");
    let app = TestApp::start_with(Backend::Sqlite, options.clone());
    let served = plugin_status(&app, "faulty");
    assert!(served.starts_with("failed: on_plugins_loaded"), "{served}");
    drop(app);
    let db = TestDb::create(Backend::Sqlite);
    let (status, output) = run_to_exit(&db, &options.args(&["plugins", "list"]));
    assert!(status.success(), "{output}");
    let line = list_line(&output, "faulty");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["faulty", "loaded"], "{line}");
    assert!(
        !db.dir.path().join("app.db").exists(),
        "plugins list opened the database"
    );
}

// ------------------------------------------------------------ plugin new

/// `app plugin new --help`: "The plugin's name (lowercase letters, digits
/// and `_`)"; README: "`cargo run -- plugin new greeter` creates
/// `plugins/app_plugin_greeter/`" in the plugin folder, here the one
/// `[plugins] dir` of the config file names (created if need be); a name
/// that is not one creates nothing and exits 1.
#[test]
fn plugin_new_uses_the_configured_folder_and_refuses_names_that_are_not_names() {
    let db = TestDb::create(Backend::Sqlite);
    let folder = db.dir.path().join("my-plugins");
    let config = format!("[plugins]\ndir = \"{}\"\n", folder.display());
    let new = |args: &[&str]| {
        let mut all = vec!["plugin", "new"];
        all.extend_from_slice(args);
        run_to_exit(
            &db,
            &Options::default().real_app().config(&config).args(&all),
        )
    };
    let (status, output) = new(&["greeter"]);
    assert!(status.success(), "{output}");
    let root = folder.join("app_plugin_greeter");
    assert!(
        output.contains(&format!(
            "created {}: `cargo run` builds and loads it",
            root.display()
        )),
        "{output}"
    );
    assert!(root.join("Cargo.toml").is_file() && root.join("src/lib.rs").is_file());

    let (status, output) = new(&["courier2", "--component"]);
    assert!(status.success(), "{output}");
    let manifest = std::fs::read_to_string(folder.join("app_plugin_courier2/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"app_plugin_courier2\""),
        "{manifest}"
    );
    assert!(
        manifest.contains("[package.metadata.app-plugin]\nkind = \"component\""),
        "{manifest}"
    );

    for bad in [
        "9lives",
        "_hidden",
        "with-dash",
        "Greeter",
        "",
        "a b",
        "../escape",
    ] {
        let (status, output) = new(&[bad]);
        refused(status, &output);
        assert!(output.contains("is not a plugin name"), "{bad:?}: {output}");
    }
    let mut made: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["app_plugin_courier2", "app_plugin_greeter"]);
    assert!(
        !db.dir.path().join("escape").exists() && !db.dir.path().join("app_plugin_escape").exists()
    );
}

// ------------------------------------------------------------- the parser

/// `app --help`: "Run the HTTP service (the default)", with the commands
/// `serve`, `plugins`, `package`, `plugin` and `deliveries`; `serve
/// --help`: "With --watch: how often to look, in milliseconds" (default
/// 500). A command line the parser refuses exits 2 (clap's usage error)
/// and does nothing: no database, no token.
#[test]
fn usage_errors_exit_2_and_touch_nothing_and_help_lists_the_commands() {
    let db = TestDb::create(Backend::Sqlite);
    let run = |args: &[&str]| {
        exit_without(
            &db,
            &Options::default().real_app().args(args),
            &["APP_ADMIN_TOKEN"],
        )
    };
    let (status, help) = run(&["--help"]);
    assert!(status.success(), "{help}");
    for command in ["serve", "plugins", "package", "plugin", "deliveries"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} in:\n{help}"
        );
    }
    assert!(
        help.contains("Run the HTTP service (the default)"),
        "{help}"
    );
    let (status, help) = run(&["serve", "--help"]);
    assert!(
        status.success() && help.contains("[default: 500]"),
        "{help}"
    );
    let (status, version) = run(&["--version"]);
    assert!(status.success(), "{version}");
    assert_eq!(version.trim(), format!("app {}", env!("CARGO_PKG_VERSION")));

    for args in [
        &["frobnicate"][..],
        &["deliveries", "retry", "abc"],
        &["deliveries", "retry"],
        &["deliveries", "list", "--limit", "many"],
        &["serve", "--watch", "--watch-ms", "9"],
        &["plugins"],
        &["package"],
    ] {
        let (status, output) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {output}");
        assert!(!output.contains("listening on"), "{args:?}: {output}");
    }
    let left: Vec<_> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "the parser's refusals wrote {left:?}");
}

/// `app --help`: `serve` is "the default": `app` alone and `app serve`
/// both serve; `--watch-ms` is only read "With --watch".
#[test]
fn serve_is_the_default_and_watch_ms_alone_watches_nothing() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let app = TestApp::start_on(
        db.clone(),
        &Options::default().args(&["serve", "--watch-ms", "20"]),
    );
    expect(200, app.get("/health", None));
    let (status, log) = stop(app);
    assert!(status.success(), "{log}");
    assert!(!log.contains("watching"), "{log}");
    let app = TestApp::start_on(db, &Options::default());
    expect(200, app.get("/health", None));
}

// ------------------------------------------------------------- deliveries

/// `app deliveries list --help`: "List deliveries, oldest first", `--status`
/// "pending, dead or delivered (default: all)", `--limit` "At most this
/// many", `--offset` "Skip this many". On a database no app has used yet
/// it lists nothing; a status or limit out of range exits 1 naming it.
#[test]
fn deliveries_list_on_a_fresh_database_and_filters_out_of_range() {
    let db = TestDb::create(Backend::Sqlite);
    let list = |args: &[&str]| {
        let mut all = vec!["deliveries", "list"];
        all.extend_from_slice(args);
        run_to_exit(&db, &Options::default().args(&all))
    };
    let (status, output) = list(&[]);
    assert!(status.success(), "{output}");
    assert!(output.lines().any(|l| l == "0 of 0"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
    let (status, output) = list(&["--status", "lost"]);
    refused(status, &output);
    assert!(
        output.contains("status must be pending, dead or delivered"),
        "{output}"
    );
    let (status, output) = list(&["--limit", "501"]);
    refused(status, &output);
    assert!(output.contains("limit must be 0 to 500"), "{output}");
    let (status, output) = list(&["--status", "dead", "--limit", "500", "--offset", "7"]);
    assert!(status.success(), "{output}");
    assert!(output.lines().any(|l| l == "0 of 0"), "{output}");
    // It reads the database the configuration names, as the server does.
    let elsewhere = db.dir.path().join("elsewhere.db");
    let config = format!(
        "database_url = \"sqlite://{}?mode=rwc\"\n",
        elsewhere.display()
    );
    let options = Options::default()
        .config(&config)
        .args(&["deliveries", "list"]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    assert!(
        output.contains(&format!("database: SQLite, {}", elsewhere.display())),
        "{output}"
    );
    assert!(elsewhere.is_file());
}

/// README, "After-commit hooks": a failed delivery "is dead until an admin
/// retries it (`POST /api/admin/deliveries/:id/retry` or `app deliveries
/// retry ID`; `app deliveries list --status dead` lists them)"; `app
/// deliveries retry --help`: "Make a dead delivery pending again (a running
/// app picks it up at its next poll)". Oldest first, paged; a retry of a
/// delivery that is not dead, or not there, exits 1 and changes nothing.
#[test]
fn deliveries_retry_from_the_command_line_is_picked_up_by_the_running_app() {
    let receiver = Receiver::failing_first(2, Answer::Status(503));
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nsecret = \"s\"\ntimeout_ms = 2000\n\n\
         [deliveries]\nmax_attempts = 1\nbackoff_ms = 50\npoll_ms = 100\nlease_ms = 3000\ntimeout_ms = 2500\n",
        receiver.url
    );
    let options = Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
    let app = TestApp::start_on(db.clone(), &options);
    app.create_user("first");
    receiver.wait_for(1);
    app.create_user("second");
    let dead = || {
        db.count(
            "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'webhooks' AND status = 'dead'",
        )
    };
    wait_until("two dead deliveries", || dead() == 2);
    let ids = db.column("SELECT id FROM outbox_deliveries WHERE plugin = 'webhooks' ORDER BY id");
    let keys: Vec<String> = db.column(
        "SELECT e.event_key FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
         WHERE d.plugin = 'webhooks' ORDER BY d.id",
    );
    let cli = |args: &[&str]| run_to_exit(&db, &Options::default().args(args));

    let (status, output) = cli(&["deliveries", "list", "--status", "dead"]);
    assert!(status.success(), "{output}");
    let rows: Vec<&str> = output.lines().filter(|l| l.contains("attempts=")).collect();
    assert_eq!(rows.len(), 2, "{output}");
    for (row, (id, key)) in rows.iter().zip(ids.iter().zip(&keys)) {
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            &words[..5],
            [
                id.as_str(),
                "dead",
                "user.created",
                "webhooks",
                "attempts=1"
            ],
            "{row}"
        );
        assert_eq!(words[5], format!("event={key}"), "{row}");
        assert!(row.contains("503"), "the last error in {row}");
    }
    assert!(output.lines().any(|l| l == "2 of 2"), "{output}");
    let (status, output) = cli(&["deliveries", "list", "--limit", "1", "--offset", "1"]);
    assert!(status.success(), "{output}");
    let rows: Vec<&str> = output.lines().filter(|l| l.contains("attempts=")).collect();
    assert_eq!(rows.len(), 1, "{output}");
    assert!(rows[0].starts_with(&format!("{} ", ids[1])), "{output}");
    assert!(output.lines().any(|l| l == "1 of 2"), "{output}");

    // Retried from the command line: the running app delivers it.
    let (status, output) = cli(&["deliveries", "retry", &ids[0]]);
    assert!(status.success(), "{output}");
    assert!(
        output.contains(&format!(
            "delivery {} is pending again (user.created)",
            ids[0]
        )),
        "{output}"
    );
    wait_until("the retried delivery", || {
        db.column(&format!(
            "SELECT status FROM outbox_deliveries WHERE id = {}",
            ids[0]
        )) == ["delivered"]
    });
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].key, keys[0]);
    assert_eq!(dead(), 1);

    // Not dead, not there: exit 1, nothing changed.
    let before = db
        .column("SELECT id || ':' || status || ':' || attempts FROM outbox_deliveries ORDER BY id");
    let (status, output) = cli(&["deliveries", "retry", &ids[0]]);
    refused(status, &output);
    assert!(
        output.contains(&format!("delivery {} is delivered, not dead", ids[0])),
        "{output}"
    );
    let (status, output) = cli(&["deliveries", "retry", "99999"]);
    refused(status, &output);
    assert!(output.contains("no delivery with id 99999"), "{output}");
    let after = db
        .column("SELECT id || ':' || status || ':' || attempts FROM outbox_deliveries ORDER BY id");
    assert_eq!(before, after);
    drop(app);
    assert_eq!(receiver.received().len(), 3);
}

// -------------------------------------------------------------------- logs

/// README, "Configuration": "Logs go to stdout through `tracing`, filtered
/// by `RUST_LOG` (default `info`), one line per request with status and
/// latency (target `app::http`, so `RUST_LOG=info,app::http=warn` drops
/// these and the server's own INFO lines, and keeps the rest".
#[test]
fn rust_log_app_http_warn_drops_the_access_log_and_keeps_the_rest() {
    let access = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(" app::http") && l.contains("GET /health 200"))
            .map(str::to_owned)
            .collect()
    };
    let app = TestApp::start_with(Backend::Sqlite, Options::default());
    expect(200, app.get("/health", None));
    let (status, log) = stop(app);
    assert!(status.success(), "{log}");
    let lines = access(&log);
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    assert!(lines[0].contains("ms"), "no latency in {}", lines[0]);

    let quiet = Options::default().env("RUST_LOG", "info,app::http=warn");
    let app = TestApp::start_with(Backend::Sqlite, quiet);
    expect(200, app.get("/health", None));
    app.create_user("ada");
    let (status, log) = stop(app);
    assert!(status.success(), "{log}");
    assert!(access(&log).is_empty(), "{log}");
    assert!(
        !log.lines().any(|l| l.contains(" INFO app::http")),
        "an INFO line of app::http: {log}"
    );
    for kept in [
        "database: SQLite",
        "listening on http://",
        "plugins: ",
        "stopped",
    ] {
        assert!(log.contains(kept), "{kept} dropped: {log}");
    }
}

// ------------------------------------------------------- more edges

/// README, "Configuration": `dir = "plugins"` "(default: plugins/ beside
/// the binary if there is one, else ./plugins)"; "A configured plugin
/// folder that does not exist is a warning" (so an unconfigured one that
/// does not exist is not).
#[test]
fn without_a_configured_folder_plugins_come_from_plugins_in_the_working_directory() {
    let beside = binary().parent().unwrap().join("plugins");
    assert!(
        !beside.exists(),
        "{} exists: the fallback to ./plugins cannot be observed",
        beside.display()
    );
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let app = TestApp::start_on(db.clone(), &Options::default());
    let (_, log) = stop(app);
    assert!(log.contains("no plugin folder at plugins"), "{log}");
    assert!(!log.contains(" WARN "), "{log}");

    let here = db.dir.path().join("plugins");
    std::fs::create_dir(&here).unwrap();
    let hello = folder_with(&["hello_world"]);
    std::fs::copy(
        hello.path().join("libapp_plugin_hello_world.so"),
        here.join("libapp_plugin_hello_world.so"),
    )
    .unwrap();
    let app = TestApp::start_on(db, &Options::default());
    assert_eq!(plugin_status(&app, "hello_world"), "loaded");
    expect(200, app.get("/plugins/hello_world/user", ADMIN));
}

/// README, "Configuration": `database_url = ... # default: SQLite in
/// data_dir`, and "`DATABASE_URL` (a `postgres://` URL selects
/// PostgreSQL ...)": a `sqlite:` URL selects SQLite, and the embedded
/// database is "created, migrated, WAL". Named explicitly, a SQLite file
/// that does not exist yet is created as the default one is.
#[test]
fn a_sqlite_database_url_naming_a_new_file_creates_it() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let file = db.dir.path().join("named.db");
    let options = Options::default().env("DATABASE_URL", &format!("sqlite://{}", file.display()));
    let mut proc = Proc::spawn(options.command(&db));
    if let Err(status) = listens_or_exits(&mut proc) {
        let (_, output) = proc.finish();
        panic!("{status}: {output}");
    }
    assert!(file.is_file());
    assert_eq!(sqlite_column(&file, "PRAGMA journal_mode"), ["wal"]);
}

/// README, "Configuration": `listen = "127.0.0.1:8080"`. An address that
/// cannot be listened on stops startup with exit status 1, naming it.
#[test]
fn an_address_in_use_stops_startup_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = TestDb::create(Backend::Sqlite);
    let (status, output) = run_to_exit(&db, &Options::default().env("APP_LISTEN", &addr));
    refused(status, &output);
    assert!(
        output.contains(&format!("error: listening on {addr}")),
        "{output}"
    );
    drop(taken);
}

/// README, "Package it": "`target/release/app package dist` fills `dist/`
/// with the binaries (`app`, which checks and starts `app-main`), the
/// shared libraries they run on ... and every plugin, prebuilt, in
/// `dist/plugins/`". What it prints is what it copied: one path a line,
/// then the count and what to run.
#[test]
fn package_prints_exactly_what_it_copied() {
    let db = TestDb::create(Backend::Sqlite);
    let dist = db.dir.path().join("dist");
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .args(&["package", dist.to_str().unwrap()]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    let prefix = format!("{}/", dist.display());
    let listed: Vec<&str> = output.lines().filter(|l| l.starts_with(&prefix)).collect();
    let last = format!(
        "{} files in {}: run {}",
        listed.len(),
        dist.display(),
        dist.join("app").display()
    );
    assert!(output.lines().any(|l| l == last), "{last} in:\n{output}");
    for file in &listed {
        assert!(Path::new(file).is_file(), "{file} listed, not there");
    }
    for file in ["app", "app-main", "libhookspecs.so"] {
        assert!(
            listed.contains(&dist.join(file).to_str().unwrap()),
            "{file}: {output}"
        );
    }
    let mut plugins: Vec<String> = std::fs::read_dir(dist.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    plugins.sort();
    let expected: Vec<String> = SHIPPED
        .iter()
        .map(|n| format!("libapp_plugin_{n}.so"))
        .collect();
    assert_eq!(plugins, expected);
    let mut on_disk = 0;
    for entry in walk(&dist) {
        on_disk += 1;
        assert!(
            listed.contains(&entry.to_str().unwrap()),
            "{} copied, not listed",
            entry.display()
        );
    }
    assert_eq!(on_disk, listed.len());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
