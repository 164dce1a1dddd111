//! README.md, "Write a plugin", at its edges: `app plugin new` and what it
//! makes, typed settings from `[plugins.<name>]`, a plugin's migrations,
//! its routes and its hooks, end to end with the real app.
//!
//! The plugins tried here are written by the tests: small native crates,
//! compiled with `rustc` as cargo compiles a plugin crate of the workspace
//! (a `dylib` against the workspace's own SDK library, `libhookspecs`,
//! with the workspace's `-C prefer-dynamic -C rpath`), in about a second
//! each and without touching `target/`: the library carries the same SDK
//! fingerprint as the workspace's plugins, and the app loads it from a
//! plugin folder of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use e2e_tests::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// The compiler cargo uses (its `RUSTC`, else the one beside `cargo`).
fn rustc() -> PathBuf {
    if let Some(rustc) = std::env::var_os("RUSTC") {
        return rustc.into();
    }
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let beside = cargo.with_file_name("rustc");
    if beside.is_file() {
        beside
    } else {
        "rustc".into()
    }
}

/// Compiles `source` (a plugin crate's `src/lib.rs`) as plugin `name`:
/// the compiler's error output, or the library's path in a build folder.
fn compile(name: &str, source_file: &Path) -> Result<PathBuf, String> {
    let deps = app_binary().with_file_name("deps");
    let sdk = deps.join(format!(
        "{}hookspecs{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let out = tempfile::tempdir().unwrap().keep();
    let library = out.join(library_file(name));
    let output = Command::new(rustc())
        .args(["--edition", "2024", "--crate-type", "dylib", "--crate-name"])
        .arg(format!("app_plugin_{name}"))
        .arg(source_file)
        .args(["-C", "prefer-dynamic", "-C", "rpath", "-C", "debuginfo=0"])
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("--extern")
        .arg(format!("hookspecs={}", sdk.display()))
        .arg("-o")
        .arg(&library)
        .output()
        .expect("running rustc");
    if output.status.success() {
        Ok(library)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Compiles `source` as plugin `name` into the plugin folder `folder`
/// (owner-writable only, as the app wants it).
fn native(folder: &Path, name: &str, source: &str) {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("lib.rs");
    std::fs::write(&file, source).unwrap();
    let built = compile(name, &file).unwrap_or_else(|e| panic!("compiling {name}:\n{e}"));
    let to = folder.join(library_file(name));
    std::fs::copy(&built, &to).unwrap();
    set_mode(&to, 0o755);
    let _ = std::fs::remove_dir_all(built.parent().unwrap());
}

/// The real app, plugins from `dir`, `config` as its file.
fn real_app(dir: &Path, config: &str) -> Options {
    Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .config(config)
}

/// `app plugin new <name>` with `dir` as the plugin folder.
fn plugin_new(db: &TestDb, dir: &Path, name: &str) -> (bool, String) {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .args(&["plugin", "new", name]);
    let (status, output) = run_to_exit(db, &options);
    (status.success(), output)
}

/// The names of what `dir` holds, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The lines of `output` containing `marker`, from the marker on.
fn marked(output: &str, marker: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.find(marker).map(|at| l[at..].trim().to_owned()))
        .collect()
}

fn new_user(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.org")})
}

// ---------------------------------------------------------------------
// `app plugin new`
// ---------------------------------------------------------------------

/// README: "`cargo run -- plugin new greeter` creates
/// `plugins/app_plugin_greeter/` from a template that implements one hook
/// and one route; the next `cargo run` builds and loads it"; the name
/// rule (`app plugin new --help`, discovery.rs): lowercase letters,
/// digits and `_`, starting with a letter, at most 40. At its edges: a
/// one-letter name, a 40-letter one, one with doubled and trailing `_`
/// each make a crate that compiles, loads, answers its `/hello` under
/// `/plugins/<name>/` and runs its hook once per user; 41 letters and
/// `app` are refused and write nothing; an existing folder is refused
/// and left exactly as it was.
#[test]
fn scaffolds_at_the_edges_of_the_name_rule_build_load_and_answer() {
    let db = TestDb::create(Backend::Sqlite);
    let crates = tempfile::tempdir().unwrap();
    let longest = format!("a{}", "b9_".repeat(13));
    assert_eq!(longest.len(), 40);
    let names = ["a", longest.as_str(), "x__y_"];
    for name in names {
        let (ok, output) = plugin_new(&db, crates.path(), name);
        assert!(ok, "{name}: {output}");
    }
    let too_long = format!("{longest}z");
    for refused in [too_long.as_str(), "app"] {
        let (ok, output) = plugin_new(&db, crates.path(), refused);
        assert!(!ok, "{refused} was accepted: {output}");
        assert!(
            output.contains("too long for a plugin name")
                || output.contains("the name of the app's own plugin"),
            "{refused}: {output}"
        );
    }
    let mut expected: Vec<String> = names.iter().map(|n| format!("app_plugin_{n}")).collect();
    expected.sort();
    assert_eq!(listing(crates.path()), expected, "nothing else written");

    // An existing folder: refused, left as it was.
    let a = crates.path().join("app_plugin_a");
    std::fs::write(a.join("src/lib.rs"), "// mine\n").unwrap();
    std::fs::write(a.join("NOTES"), "keep me").unwrap();
    let (ok, output) = plugin_new(&db, crates.path(), "a");
    assert!(!ok && output.contains("already exists"), "{output}");
    assert_eq!(
        std::fs::read_to_string(a.join("src/lib.rs")).unwrap(),
        "// mine\n"
    );
    assert_eq!(listing(&a), ["Cargo.toml", "NOTES", "src"]);
    std::fs::remove_dir_all(&a).unwrap();
    assert!(plugin_new(&db, crates.path(), "a").0);

    let folder = tempfile::tempdir().unwrap();
    for name in names {
        let source = std::fs::read_to_string(
            crates
                .path()
                .join(format!("app_plugin_{name}"))
                .join("src/lib.rs"),
        )
        .unwrap();
        native(folder.path(), name, &source);
    }
    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), ""));
    for name in names {
        assert_eq!(plugin_status(&app, name), "loaded", "{name}");
        let path = format!("/plugins/{name}/hello");
        assert_eq!(
            expect(200, app.get(&path, None)),
            json!({"plugin": name, "hello": null})
        );
        let signed = expect(200, app.get(&path, ADMIN));
        assert!(signed["hello"].is_string(), "{signed}");
        expect_error(
            404,
            "not_found",
            app.get(&format!("/plugins/{name}/nope"), None),
        );
    }
    app.create_user("ada");
    app.proc.output.wait_for("each scaffold's hook", |out| {
        out.matches("user ada created").count() >= names.len()
    });
    assert_eq!(
        app.proc.output.text().matches("user ada created").count(),
        names.len(),
        "once per plugin"
    );
}

/// README: "`cargo run -- plugin new greeter` creates ... from a template
/// ...; the next `cargo run` builds and loads it"; `plugin new` applies
/// the loader's name rule ("a name it would refuse is refused here"). A
/// name the rule accepts must then give a crate that compiles: one that
/// does not breaks every later `cargo run` of the workspace (plugins/* are
/// default members). The template names its type after the plugin
/// (`greeter` -> `Greeter`) next to `use hookspecs::prelude::*`: `self`
/// gives `struct Self`, and `user`, `startup`, `request`, `hook_context`,
/// `app_hooks` and `box` give a type that shadows the one the template's
/// own code means (`User`, `Startup`, `Request`, `HookContext`, the
/// trait `AppHooks`, std's `Box`).
#[test]
fn every_name_plugin_new_accepts_gives_a_crate_that_compiles() {
    let db = TestDb::create(Backend::Sqlite);
    let crates = tempfile::tempdir().unwrap();
    let mut broken = Vec::new();
    for name in [
        "self",
        "user",
        "startup",
        "request",
        "hook_context",
        "app_hooks",
        "box",
        "greeter",
    ] {
        let (ok, output) = plugin_new(&db, crates.path(), name);
        let root = crates.path().join(format!("app_plugin_{name}"));
        if !ok {
            assert!(!root.exists(), "{name} refused, yet written: {output}");
            continue;
        }
        let compiled = compile(name, &root.join("src/lib.rs"));
        if let Ok(library) = &compiled {
            let _ = std::fs::remove_dir_all(library.parent().unwrap());
        }
        if let Err(errors) = compiled {
            let first = errors
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or_default()
                .to_owned();
            broken.push(format!("{name}: {first}"));
        }
    }
    assert!(
        broken.is_empty(),
        "accepted, but the scaffold does not compile:\n{}",
        broken.join("\n")
    );
}

// ---------------------------------------------------------------------
// Typed settings
// ---------------------------------------------------------------------

/// A plugin with typed settings (`greeting`, `times: u8`, `inner.depth:
/// u32`), serving `GET /settings`: what it was given, typed, what
/// `startup.config()` and `ctx.plugin_config(<its name>)` hold.
const SETTINGS: &str = r#"
use hookspecs::prelude::*;

#[derive(serde::Deserialize, serde::Serialize, Default)]
#[serde(crate = "hookspecs::serde", default)]
pub struct Settings {
    greeting: String,
    times: u8,
    inner: Inner,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
#[serde(crate = "hookspecs::serde", default)]
pub struct Inner {
    depth: u32,
}

pub struct Configured {
    settings: serde_json::Value,
}

impl Configured {
    fn new(settings: Settings) -> Self {
        Configured { settings: serde_json::to_value(&settings).unwrap() }
    }
}

#[hookimpl]
impl AppHooks for Configured {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let table = startup.config().cloned();
        let settings = self.settings.clone();
        startup.routes().get("/settings", move |req: Request| {
            let (table, settings) = (table.clone(), settings.clone());
            async move {
                Ok(json!({
                    "settings": settings,
                    "table": table,
                    "plugin_config": req.ctx().plugin_config("NAME").cloned(),
                }))
            }
        })?;
        Ok(())
    }
}

hookspecs::export_plugin!(Configured::new, config = Settings);
"#;

/// A plugin without settings of its own: the scaffold's `/hello`.
const PLAIN: &str = r#"
use hookspecs::prelude::*;

#[derive(Default)]
pub struct Plain;

#[hookimpl]
impl AppHooks for Plain {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        startup.routes().get("/hello", |_req: Request| async move { Ok(json!({"plain": true})) })?;
        Ok(())
    }
}

hookspecs::export_plugin!(Plain::default);
"#;

/// A folder with the settings plugin as `name` and a plain plugin beside.
fn settings_folder(name: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    native(folder.path(), name, &SETTINGS.replace("NAME", name));
    native(folder.path(), "plain", PLAIN);
    folder
}

/// README: "A plugin's own settings come from `[plugins.<name>]` in the
/// config file, typed ... An unknown key or a wrong type fails that
/// plugin with the key named ...; the app starts without it". Nested
/// keys are named by their path, a number out of its type's range is a
/// wrong type, and the plugin beside loads; absent, the table gives the
/// defaults (and `startup.config()` / `ctx.plugin_config` nothing); given,
/// the plugin sees it typed and whole.
#[test]
fn typed_settings_name_the_nested_key_or_the_value_out_of_range() {
    let folder = settings_folder("typed");
    for (table, named) in [
        (
            "[plugins.typed.inner]\ndepth = 3\nbogus = 1\n",
            "`inner.bogus`",
        ),
        ("[plugins.typed]\ntimes = 300\n", "`times`"),
        ("[plugins.typed]\ntimes = -1\n", "`times`"),
        ("[plugins.typed]\ntimes = 2.5\n", "`times`"),
        ("[plugins.typed.inner]\ndepth = \"deep\"\n", "`inner.depth`"),
        ("[plugins.typed]\ninner = 4\n", "`inner`"),
        (
            "[plugins.typed]\ngreeting = \"hi\"\ngreting = \"hi\"\n",
            "`greting`",
        ),
    ] {
        let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), table));
        let why = plugin_status(&app, "typed");
        assert!(
            why.starts_with("failed: invalid configuration") && why.contains(named),
            "{table}: {why}"
        );
        expect_error(404, "not_found", app.get("/plugins/typed/settings", None));
        assert_eq!(plugin_status(&app, "plain"), "loaded");
        assert_eq!(
            expect(200, app.get("/plugins/plain/hello", None)),
            json!({"plain": true})
        );
    }

    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), ""));
    assert_eq!(
        expect(200, app.get("/plugins/typed/settings", None)),
        json!({
            "settings": {"greeting": "", "times": 0, "inner": {"depth": 0}},
            "table": null,
            "plugin_config": null,
        })
    );
    drop(app);
    let table = "[plugins.typed]\ngreeting = \"hi\"\ntimes = 255\n[plugins.typed.inner]\ndepth = 4294967295\n";
    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), table));
    let given = json!({"greeting": "hi", "times": 255, "inner": {"depth": 4294967295_u32}});
    assert_eq!(
        expect(200, app.get("/plugins/typed/settings", None)),
        json!({"settings": given, "table": given, "plugin_config": given})
    );
}

/// README: "A plugin's own settings come from `[plugins.<name>]`", for
/// any name the rule accepts (`app plugin new dir` makes
/// `app_plugin_dir`). `dir`, `disabled` and `required` are also keys of
/// `[plugins]` itself: a plugin so named should get its table as any
/// other, or have its name refused by `plugin new` and the loader.
#[test]
fn a_plugin_named_like_a_key_of_the_plugins_table_gets_its_settings() {
    let mut wrong = Vec::new();
    for name in ["dir", "disabled", "required"] {
        let db = Arc::new(TestDb::create(Backend::Sqlite));
        let scaffolds = tempfile::tempdir().unwrap();
        if !plugin_new(&db, scaffolds.path(), name).0 {
            continue; // refused as a name: consistent
        }
        let folder = tempfile::tempdir().unwrap();
        native(folder.path(), name, &SETTINGS.replace("NAME", name));
        let table = format!("[plugins.{name}]\ngreeting = \"hi\"\n");
        // `plugins list` refuses what `serve` refuses, without serving.
        let listed = real_app(folder.path(), &table).args(&["plugins", "list"]);
        let (status, output) = run_to_exit(&db, &listed);
        if !status.success() {
            let mut lines = output.lines().filter(|l| !l.trim().is_empty());
            let why = lines.next_back().unwrap_or_default().to_owned();
            wrong.push(format!("{name}: the app refuses to start: {why}"));
            continue;
        }
        let app = TestApp::start_on(db, &real_app(folder.path(), &table));
        let (status, body) = app.get(&format!("/plugins/{name}/settings"), None);
        if status != 200 || body["settings"]["greeting"] != "hi" {
            wrong.push(format!("{name}: {status} {body}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------

/// A plugin with one migration, `SQLITE` / `POSTGRES` its two texts.
const MIGRATING: &str = r#"
use hookspecs::prelude::*;

#[derive(Default)]
pub struct Migrating;

const MIGRATIONS: &[hookspecs::Migration] = &[hookspecs::Migration {
    version: 1,
    name: "first",
    sqlite: "SQLITE",
    postgres: "POSTGRES",
}];

#[hookimpl]
impl AppHooks for Migrating {
    async fn on_user_created(&self, _user: &User, _ctx: &HookContext) -> HookResult<()> {
        Ok(())
    }
}

hookspecs::export_plugin!(Migrating::default, migrations = MIGRATIONS);
"#;

fn migrating(folder: &Path, name: &str, sqlite: &str, postgres: &str) {
    let source = MIGRATING
        .replace("SQLITE", sqlite)
        .replace("POSTGRES", postgres);
    native(folder, name, &source);
}

/// The tables of `db` whose name starts with `prefix`, sorted.
fn tables(db: &TestDb, backend: Backend, like: &str) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '{like}' ORDER BY name"
        ),
        Backend::Postgres => format!(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name LIKE '{like}' ORDER BY table_name"
        ),
    };
    db.column(&sql)
}

e2e! {
    /// README: "A plugin may own tables, named `plugin_<name>_*` ...
    /// [the app] refuses a migration that creates any other table". A
    /// plugin named `audit` (README's own example name) is the prefix of
    /// `audit_log`'s namespace: a migration of `audit` creating
    /// `plugin_audit_log_entries` creates a table of `audit_log`'s: it is
    /// refused, naming the owner, and the shipped audit_log loads and
    /// writes into its own table.
    fn a_plugins_migration_cannot_create_a_table_of_a_plugin_whose_name_extends_its_own(backend) {
        let folder = tempfile::tempdir().unwrap();
        put_library(folder.path(), "audit_log");
        let squat = "CREATE TABLE plugin_audit_log_entries (squatter TEXT)";
        migrating(folder.path(), "audit", squat, squat);
        let app = TestApp::start_with(backend, real_app(folder.path(), ""));
        let audit = plugin_status(&app, "audit");
        let audit_log = plugin_status(&app, "audit_log");
        app.create_user("ada");
        let entries = app.db.count("SELECT COUNT(*) FROM plugin_audit_log_entries");
        assert!(
            audit == "failed: migration 1 creates table `plugin_audit_log_entries`, a table of the plugin `audit_log` (`plugin_audit_log_*`)",
            "audit: `{audit}`; audit_log: `{audit_log}`; audit_log's entries: {entries}"
        );
        assert_eq!(audit_log, "loaded");
        assert_eq!(entries, 1, "audit_log's entry for ada");
    }

    /// README: "[the app] refuses a migration that creates any other
    /// table". Renaming one of its own tables is creating one of that
    /// name as surely as `CREATE TABLE` (sdk_claims.rs tries `CREATE
    /// VIRTUAL TABLE` and a comment): refused, nothing of it kept, and the
    /// app serves.
    fn a_migration_renaming_its_table_out_of_its_prefix_is_refused(backend) {
        let folder = tempfile::tempdir().unwrap();
        let sql = "CREATE TABLE plugin_renamer_t (x TEXT); ALTER TABLE plugin_renamer_t RENAME TO users_archive";
        migrating(folder.path(), "renamer", sql, sql);
        let app = TestApp::start_with(backend, real_app(folder.path(), ""));
        let why = plugin_status(&app, "renamer");
        let made = tables(&app.db, backend, "users_archive");
        assert!(
            why.starts_with("failed") && made.is_empty(),
            "renamer: `{why}`; tables: {made:?}"
        );
        assert!(tables(&app.db, backend, "plugin_renamer%").is_empty());
        app.create_user("ada");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    }

    /// README: "the app applies those not applied yet at startup, in one
    /// transaction, with the plugin's own history"; a second start applies
    /// nothing again, and two plugins' histories are apart: one failing
    /// its migration (its second statement refers to a missing table)
    /// leaves no table and no history while the other's stays, once.
    fn a_failing_migration_fails_its_plugin_alone_and_a_restart_applies_nothing_twice(backend) {
        let db = Arc::new(TestDb::create(backend));
        let folder = tempfile::tempdir().unwrap();
        let good = "CREATE TABLE plugin_good_t (x TEXT); INSERT INTO plugin_good_t (x) VALUES ('seeded')";
        migrating(folder.path(), "good", good, good);
        let bad = "CREATE TABLE plugin_bad_t (x TEXT); INSERT INTO plugin_bad_missing (x) VALUES ('y')";
        migrating(folder.path(), "bad", bad, bad);
        for round in 0..2 {
            let app = TestApp::start_on(db.clone(), &real_app(folder.path(), ""));
            assert_eq!(plugin_status(&app, "good"), "loaded", "round {round}");
            let why = plugin_status(&app, "bad");
            assert!(
                why.starts_with("failed: migration 1 (first) failed"),
                "round {round}: {why}"
            );
            assert_eq!(
                db.column("SELECT x FROM plugin_good_t"),
                ["seeded"],
                "round {round}: applied once"
            );
            assert_eq!(
                db.column("SELECT version || ' ' || name FROM plugin_good_migrations"),
                ["1 first"]
            );
            assert!(tables(&db, backend, "plugin_bad%").is_empty(), "round {round}");
            let output = app.proc.output.text();
            let applied = output.matches("plugin good: 1 migration(s) applied").count();
            assert_eq!(applied, usize::from(round == 0), "round {round}:\n{output}");
        }
    }
}

/// README: a plugin's tables come "with migrations it ships in both
/// dialects; the app applies those not applied yet". A migration with no
/// PostgreSQL text at all (empty) does nothing there: recorded as applied
/// it would never be applied once the text is written: it is refused on
/// PostgreSQL (its plugin failed, saying what to write), not recorded.
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
fn a_migration_without_its_postgresql_text_is_not_recorded_as_applied() {
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let folder = tempfile::tempdir().unwrap();
    migrating(
        folder.path(),
        "halfway",
        "CREATE TABLE plugin_halfway_t (x TEXT)",
        "",
    );
    let app = TestApp::start_with(backend, real_app(folder.path(), ""));
    let why = plugin_status(&app, "halfway");
    let history = tables(&app.db, backend, "plugin_halfway_migrations");
    let recorded = if history.is_empty() {
        Vec::new()
    } else {
        app.db
            .column("SELECT version || ' ' || name FROM plugin_halfway_migrations")
    };
    assert!(
        why.starts_with("failed") && recorded.is_empty(),
        "halfway: `{why}`; history: {recorded:?}; tables: {:?}",
        tables(&app.db, backend, "plugin_halfway%")
    );
}

// ---------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------

/// `pager`: `GET /items` pages over 1..=7; `POST /panic-after-write`
/// creates `panicky` then panics; `POST /swallow` creates `kept`, then
/// `vetoed-x` (which its own hook refuses), and answers `Ok` whatever;
/// `POST /swallow-delete/:id` pins the user (its table references `users`),
/// then deletes them, and answers `Ok` whatever;
/// `POST /fail-after-write` creates `failing` then answers a 422.
const PAGER: &str = r#"
use hookspecs::prelude::*;
use hookspecs::NewUser;

#[derive(Default)]
pub struct Pager;

fn new_user(name: &str) -> NewUser {
    NewUser { username: name.into(), email: format!("{name}@example.org"), display_name: None }
}

#[hookimpl]
impl AppHooks for Pager {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let routes = startup.routes();
        routes.get("/items", |req: Request| async move {
            let page = req.page()?;
            let items: Vec<i64> = (1..=7)
                .filter(|i| page.after.is_none_or(|after| *i > after))
                .take(page.limit as usize)
                .collect();
            Reply::page(&items, page, |i| *i)
        })?;
        routes.post("/panic-after-write", |req: Request| async move {
            let ctx = req.ctx();
            ctx.services().create_user(ctx, new_user("panicky")).await?;
            if true {
                panic!("pager panics after writing");
            }
            Ok(json!({}))
        })?;
        routes.post("/fail-after-write", |req: Request| async move {
            let ctx = req.ctx();
            ctx.services().create_user(ctx, new_user("failing")).await?;
            Err::<serde_json::Value, _>(ApiError::invalid("thing", "pager changed its mind"))
        })?;
        routes.post("/swallow-delete/:id", |req: Request| async move {
            let (ctx, id) = (req.ctx(), req.id_param("id")?);
            sqlx::query("INSERT INTO plugin_pager_pins (user_id) VALUES ($1)")
                .bind(id)
                .execute(&mut *ctx.db().await?)
                .await?;
            let deleted = ctx.services().delete_user(ctx, id).await;
            Ok(json!({"deleted": deleted.is_ok()}))
        })?;
        routes.post("/swallow", |req: Request| async move {
            let ctx = req.ctx();
            let kept = ctx.services().create_user(ctx, new_user("kept")).await?;
            let vetoed = ctx.services().create_user(ctx, new_user("vetoed-x")).await;
            Ok(json!({"kept": kept.id, "vetoed_failed": vetoed.is_err()}))
        })?;
        Ok(())
    }

    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!("pager-hook {}", user.username);
        if user.username.starts_with("vetoed-") {
            bail!("pager vetoes {}", user.username);
        }
        Ok(())
    }
}

const MIGRATIONS: &[hookspecs::Migration] = &[hookspecs::Migration {
    version: 1,
    name: "pins",
    sqlite: "CREATE TABLE plugin_pager_pins (user_id INTEGER NOT NULL REFERENCES users (id))",
    postgres: "CREATE TABLE plugin_pager_pins (user_id BIGINT NOT NULL REFERENCES users (id))",
}];

hookspecs::export_plugin!(Pager::default, migrations = MIGRATIONS);
"#;

fn pager_app(backend: Backend) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    native(folder.path(), "pager", PAGER);
    let app = TestApp::start_with(backend, real_app(folder.path(), ""));
    assert_eq!(plugin_status(&app, "pager"), "loaded");
    (app, folder)
}

fn usernames(app: &TestApp) -> Vec<String> {
    app.db.column("SELECT username FROM users ORDER BY id")
}

/// README: "Lists answer one page: `Reply::page(&items, page, |item|
/// item.id)`" with "the page `req.page()`": a plugin's list is walked
/// whole through its `Link` headers (its own path under
/// `/plugins/<name>/`, the page's parameters only), the last page has no
/// link, and a page that is not one is 422 naming the parameter.
#[test]
fn a_plugin_list_is_walked_whole_through_its_link_headers() {
    let (app, _folder) = pager_app(Backend::Sqlite);
    let mut target = "/plugins/pager/items?limit=3&other=x".to_owned();
    let mut pages = Vec::new();
    for _ in 0..10 {
        let whole = app.try_whole("GET", &target, None, None).unwrap();
        assert_eq!(whole.status, 200, "{}", whole.text);
        pages.push(whole.body.clone());
        match whole.header("link") {
            None => break,
            Some(link) => {
                let inner = link
                    .strip_prefix('<')
                    .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                    .unwrap_or_else(|| panic!("a Link header: {link}"));
                target = inner.to_owned();
            }
        }
    }
    assert_eq!(pages, [json!([1, 2, 3]), json!([4, 5, 6]), json!([7])]);
    assert_eq!(target, "/plugins/pager/items?limit=3&after=6");
    // Exactly full: the last page still names a next one, which is empty.
    let whole = app
        .try_whole("GET", "/plugins/pager/items?limit=7", None, None)
        .unwrap();
    assert_eq!(whole.body, json!([1, 2, 3, 4, 5, 6, 7]));
    let next = whole.header("link").expect("a full page names the next");
    assert_eq!(next, "</plugins/pager/items?limit=7&after=7>; rel=\"next\"");
    let whole = app
        .try_whole("GET", "/plugins/pager/items?limit=7&after=7", None, None)
        .unwrap();
    assert_eq!((&whole.body, whole.header("link")), (&json!([]), None));
    let default = expect(200, app.get("/plugins/pager/items", None));
    assert_eq!(default, json!([1, 2, 3, 4, 5, 6, 7]), "default limit 50");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("after=x", "after"),
        ("after=1.5", "after"),
    ] {
        let error = expect_error(
            422,
            "invalid",
            app.get(&format!("/plugins/pager/items?{query}"), None),
        );
        assert_eq!(error["field"], field, "{query}: {error}");
    }
    assert_eq!(
        expect(200, app.get("/plugins/pager/items?limit=500&after=5", None)),
        json!([6, 7])
    );
}

e2e! {
    /// README: "What it writes commits when it answers `Ok`, and rolls
    /// back otherwise ... so nothing is ever half-written"; "an error or
    /// a panic rolls the whole operation back (the API answers 500, or the
    /// status of the plugin's `ApiError`)". A handler that wrote through
    /// the services, then panics or answers an error, leaves no user and
    /// no trace of its hooks; the app serves on.
    fn a_route_that_panics_or_fails_after_writing_leaves_nothing(backend) {
        let (app, _folder) = pager_app(backend);
        let error = expect_error(
            500,
            "internal",
            app.post("/plugins/pager/panic-after-write", ADMIN, json!({})),
        );
        logged_500(&app, &error);
        let error = expect_error(
            422,
            "invalid",
            app.post("/plugins/pager/fail-after-write", ADMIN, json!({})),
        );
        assert_eq!(
            (error["field"].as_str(), error["message"].as_str()),
            (Some("thing"), Some("pager changed its mind"))
        );
        assert!(usernames(&app).is_empty(), "{:?}", usernames(&app));
        app.create_user("ada");
        assert_eq!(usernames(&app), ["ada"]);
        let output = app.proc.output.text();
        assert_eq!(marked(&output, "pager-hook "), ["pager-hook panicky", "pager-hook failing", "pager-hook ada"]);
    }

    /// README: "an error or a panic rolls the whole operation back";
    /// "nothing is ever half-written"; "A service call that fails once it
    /// has written ... fails the whole operation". A handler may go on
    /// after one of its service calls failed (a hook's veto) and answer
    /// `Ok`: the operation failed all the same, so nothing of it commits
    /// (`kept` neither) and the request answers the service's error.
    fn a_vetoed_operation_a_handler_goes_past_leaves_no_row(backend) {
        let (app, _folder) = pager_app(backend);
        let error = expect_error(500, "hook_failed", app.post("/plugins/pager/swallow", ADMIN, json!({})));
        assert_eq!((error["plugin"].as_str(), error["hook"].as_str()), (Some("pager"), Some("on_user_created")), "{error}");
        assert!(usernames(&app).is_empty(), "{:?}", usernames(&app));
        app.create_user("ada");
        assert_eq!(usernames(&app), ["ada"]);
    }

    /// The same of a service that fails after writing without any hook
    /// refusing: deleting a user removes their memberships first, then the
    /// user, which the plugin's own table still references. A handler
    /// going on past that failure and answering `Ok` would commit the
    /// removed memberships of a user who stays: the operation fails whole
    /// instead, its pin, memberships and user as they were.
    fn a_service_failing_after_its_own_writes_fails_the_operation_whole(backend) {
        let (app, _folder) = pager_app(backend);
        let ada = app.create_user("ada");
        let space = app.create_space("lab", None);
        let member = format!("/api/spaces/{}/members/{}", space["id"], ada["id"]);
        expect(201, app.put(&member, ADMIN, json!({"role": "reader"})));
        let path = format!("/plugins/pager/swallow-delete/{}", ada["id"]);
        // The failure is a foreign key's: a 409 that says why, without
        // the constraint's or the table's name, answered at once (not a
        // race run twenty times over, then a 503).
        let error = expect_error(409, "conflict", app.post(&path, ADMIN, json!({})));
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.starts_with(&format!("user {} is still referred to", ada["id"])), "{error}");
        assert!(!message.contains("pins") && !message.contains("fkey") && !message.contains("FOREIGN"), "{error}");
        assert_eq!(error["resource"], "user", "{error}");
        assert_eq!(usernames(&app), ["ada"]);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 1);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_pager_pins"), 0);
    }
}

// ---------------------------------------------------------------------
// Hooks across plugins: order and veto
// ---------------------------------------------------------------------

/// One plugin of the order test: `on_user_created` with `ATTR`, logging
/// `order-probe NAME <username>` and writing a row into its own table
/// (made by its migration); `o_d` refuses `veto-*` users with a 409.
const ORDERED: &str = r#"
use hookspecs::prelude::*;

#[derive(Default)]
pub struct Ordered;

const MIGRATIONS: &[hookspecs::Migration] = &[hookspecs::Migration {
    version: 1,
    name: "seen",
    sqlite: "CREATE TABLE plugin_NAME_seen (username TEXT NOT NULL)",
    postgres: "CREATE TABLE plugin_NAME_seen (username TEXT NOT NULL)",
}];

#[hookimpl]
impl AppHooks for Ordered {
    #[hookimpl(ATTR)]
    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        tracing::info!("order-probe NAME {}", user.username);
        sqlx::query("INSERT INTO plugin_NAME_seen (username) VALUES ($1)")
            .bind(&user.username)
            .execute(&mut *ctx.db().await?)
            .await?;
        if "NAME" == "o_d" && user.username.starts_with("veto-") {
            return Err(ApiError::conflict(format!("NAME refuses {}", user.username)).into());
        }
        Ok(())
    }
}

hookspecs::export_plugin!(Ordered::default, migrations = MIGRATIONS);
"#;

/// The order plugins and their `#[hookimpl(...)]`.
const ORDER: [(&str, &str); 6] = [
    ("o_a", "tryfirst"),
    ("o_b", "priority = 10"),
    ("o_c", "priority = 5, before = \"o_b\""),
    ("o_d", "priority = 0"),
    ("o_e", "trylast, priority = 100"),
    ("o_f", "priority = -1, after = \"o_e\""),
];

e2e! {
    /// README: "Hook order, priorities and wrappers are the engine's"
    /// (Call order: the `tryfirst` tier, normal, `trylast`; higher
    /// `priority` first inside a tier; `before`/`after` within a tier, one
    /// naming a plugin of another tier constrains nothing), for plugins
    /// loaded from the folder; the admin report lists that order. An
    /// entity hook's error "rolls the whole operation back (the API
    /// answers ... the status of the plugin's `ApiError`, naming plugin
    /// and hook)": `o_d`'s 409 leaves no user and none of the rows the
    /// hooks before it wrote, and the hooks after it never run.
    fn hooks_of_folder_plugins_run_in_the_documented_order_and_a_veto_undoes_them_all(backend) {
        let folder = tempfile::tempdir().unwrap();
        for (name, attr) in ORDER {
            let source = ORDERED.replace("NAME", name).replace("ATTR", attr);
            native(folder.path(), name, &source);
        }
        let app = TestApp::start_with(backend, real_app(folder.path(), ""));
        let expected = ["o_a", "o_c", "o_b", "o_d", "o_f", "o_e"];
        let report = expect(200, app.get("/api/admin/plugins", ADMIN));
        let listed: Vec<&str> = report["hooks"]["on_user_created"]
            .as_array()
            .unwrap_or_else(|| panic!("{report}"))
            .iter()
            .filter_map(|i| i["plugin"].as_str())
            .collect();
        assert_eq!(listed, expected, "the report's order");

        app.create_user("ada");
        // The log's thread writes the lines: the last one may come after the answer.
        app.proc.output.wait_for("the last hook's line", |out| out.contains("order-probe o_e ada"));
        let ran: Vec<String> = marked(&app.proc.output.text(), "order-probe ");
        let want: Vec<String> = expected.iter().map(|p| format!("order-probe {p} ada")).collect();
        assert_eq!(ran, want);
        let seen = |p: &str| app.db.column(&format!("SELECT username FROM plugin_{p}_seen"));
        for p in expected {
            assert_eq!(seen(p), ["ada"], "{p}");
        }

        let error = expect_error(409, "conflict", app.post("/api/users", ADMIN, new_user("veto-bob")));
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("o_d refuses veto-bob"), "{error}");
        let text = error.to_string();
        assert!(text.contains("o_d") && text.contains("on_user_created"), "naming plugin and hook: {error}");
        assert_eq!(app.db.column("SELECT username FROM users"), ["ada"]);
        for p in expected {
            assert_eq!(seen(p), ["ada"], "{p}: rolled back with the operation");
        }
        let ran: Vec<String> = marked(&app.proc.output.text(), "order-probe ")
            .into_iter()
            .filter(|l| l.ends_with("veto-bob"))
            .collect();
        let want: Vec<String> = ["o_a", "o_c", "o_b", "o_d"]
            .iter()
            .map(|p| format!("order-probe {p} veto-bob"))
            .collect();
        assert_eq!(ran, want, "the hooks after the veto never run");
    }
}

/// `watcher`: `on_change` and `on_space_created`, each logging the change.
const WATCHER: &str = r#"
use hookspecs::prelude::*;

#[derive(Default)]
pub struct Watcher;

#[hookimpl]
impl AppHooks for Watcher {
    async fn on_change(&self, change: &Change, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!("watch-change {}", change.name());
        Ok(())
    }

    async fn on_space_created(&self, space: &Space, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!("watch-own space.created {}", space.name);
        Ok(())
    }
}

hookspecs::export_plugin!(Watcher::default);
"#;

/// README's hook table: `on_change` runs for "every entity change above
/// that the plugin has no `on_*` hook of its own for". A plugin with
/// `on_change` and `on_space_created` gets each change exactly once:
/// space creations through its own hook only, everything else (users,
/// memberships, a space's modification and deletion) through
/// `on_change`, in the order they happen.
#[test]
fn on_change_gets_each_change_the_plugin_has_no_hook_of_its_own_for_exactly_once() {
    let folder = tempfile::tempdir().unwrap();
    native(folder.path(), "watcher", WATCHER);
    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), ""));
    let ada = id(&app.create_user("ada"));
    let space = id(&app.create_space("garden", None));
    expect(
        201,
        app.put(
            &format!("/api/spaces/{space}/members/{ada}"),
            ADMIN,
            json!({"role": "reader"}),
        ),
    );
    expect(
        200,
        app.patch(
            &format!("/api/users/{ada}"),
            ADMIN,
            json!({"display_name": "Ada"}),
        ),
    );
    expect(
        200,
        app.patch(
            &format!("/api/spaces/{space}"),
            ADMIN,
            json!({"name": "park"}),
        ),
    );
    expect(204, app.delete(&format!("/api/spaces/{space}"), ADMIN));
    let seen: Vec<String> = marked(&app.proc.output.text(), "watch-");
    assert_eq!(
        seen,
        [
            "watch-change user.created",
            "watch-own space.created garden",
            "watch-change membership.created",
            "watch-change user.modified",
            "watch-change space.modified",
            "watch-change membership.deleted",
            "watch-change space.deleted",
        ]
    );
}
