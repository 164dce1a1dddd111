//! Components loaded from the plugin folder as crates, and reloaded
//! without a restart. The probe (tests/components/probe) is copied as a
//! component crate (`[package.metadata.app-plugin] kind = "component"`)
//! in two versions, whose `on_user_created` log lines differ: version 1
//! logs `user <name> created`, version 2 `user <name> created (v2)`, and
//! version 2 no longer implements `authenticate` (its `on_user_modified`
//! line says `(v2)` too). The real app builds the
//! crate itself, or is given the built `.wasm`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use e2e_tests::*;
use serde_json::{Value, json};

/// A start that builds a component crate first: cargo may compile the
/// probe's dependencies for wasm32-wasip2 (on a machine shared with other
/// builds).
const BUILDING: Duration = Duration::from_secs(600);

/// The probe's source as version `version` (1 or 2), its WIT package
/// found where it is in this workspace.
fn probe_source(version: u32) -> String {
    probe_source_with(version, &workspace().join("hookspecs/wit"))
}

/// [`probe_source`], its WIT package found in `wit`.
fn probe_source_with(version: u32, wit: &Path) -> String {
    let probe = workspace().join("tests/components/probe/src/lib.rs");
    let source = std::fs::read_to_string(probe).unwrap();
    let relative = "\"../../../hookspecs/wit\"";
    assert!(source.contains(relative), "the probe's WIT path moved");
    let source = source.replace(relative, &format!("{:?}", wit.display().to_string()));
    let line = "format!(\"user {username} created\")";
    assert!(source.contains(line), "the probe's log line changed");
    let authenticates = "decl(Hook::Authenticate),";
    assert!(
        source.contains(authenticates),
        "the probe's manifest changed"
    );
    let modified = "\"user {} modified: display name {} -> {}\"";
    assert!(source.contains(modified), "the probe's log line changed");
    match version {
        1 => source,
        // Other lines, and one hook fewer: no more `authenticate`.
        _ => source
            .replace(line, "format!(\"user {username} created (v2)\")")
            .replace(modified, "\"user {} modified (v2): display name {} -> {}\"")
            .replace(authenticates, ""),
    }
}

/// Writes the probe as the component crate `app_plugin_<name>` in
/// `folder`, version `version`: the crate's folder.
fn probe_crate(folder: &Path, name: &str, version: u32) -> PathBuf {
    probe_crate_with(folder, name, &probe_source(version))
}

/// [`probe_crate`] with `source` as its lib.rs.
fn probe_crate_with(folder: &Path, name: &str, source: &str) -> PathBuf {
    let probe = workspace().join("tests/components/probe");
    let dir = folder.join(format!("app_plugin_{name}"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = std::fs::read_to_string(probe.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"app_plugin_probe\""));
    let manifest = manifest.replace("app_plugin_probe", &format!("app_plugin_{name}"))
        + "\n[package.metadata.app-plugin]\nkind = \"component\"\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(probe.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    dir
}

/// The probe's version `version` built as a `.wasm`, once per test
/// process (each version a package of its own: no two builds write one
/// output file).
fn probe_wasm(version: u32) -> Vec<u8> {
    static BUILT: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[version as usize - 1]
        .get_or_init(|| {
            let scratch = tempfile::tempdir().unwrap();
            let name = format!("reload_v{version}");
            let dir = probe_crate(scratch.path(), &name, version);
            std::fs::read(build_component(&dir, &name)).unwrap()
        })
        .clone()
}

/// Replaces `path` by `bytes` in one step (as a build or a copy tool that
/// writes a temporary file and renames it would).
fn replace_file(path: &Path, bytes: &[u8]) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

/// The real app on SQLite with `folder` as its plugin folder, the probe
/// plugin `name` configured with its token, given up to `deadline` to
/// start.
fn start(folder: &Path, name: &str, args: &[&str], deadline: Duration) -> TestApp {
    start_on(Backend::Sqlite, folder, name, args, deadline)
}

/// [`start`] on `backend`.
fn start_on(
    backend: Backend,
    folder: &Path,
    name: &str,
    args: &[&str],
    deadline: Duration,
) -> TestApp {
    let config = format!("[plugins.{name}]\ntoken = \"probe-secret\"\n");
    launch(backend, folder, &config, args, deadline)
}

/// The real app on `backend` with `folder` as its plugin folder and
/// `config` as its configuration, given up to `deadline` to start.
fn launch(
    backend: Backend,
    folder: &Path,
    config: &str,
    args: &[&str],
    deadline: Duration,
) -> TestApp {
    let db = Arc::new(TestDb::create(backend));
    let mut options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.to_str().unwrap())
        .config(config);
    if !args.is_empty() {
        options = options.args(args);
    }
    let proc = Proc::spawn(options.command(&db));
    let client = Client::new(proc.wait_listening_within(deadline));
    TestApp { proc, client, db }
}

/// Plugin `name`'s entry in `GET /api/admin/plugins`.
fn entry(app: &TestApp, name: &str) -> Value {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let plugins = report["plugins"].as_array().cloned().unwrap_or_default();
    let entry = plugins.into_iter().find(|p| p["name"] == name);
    entry.unwrap_or_else(|| panic!("no plugin {name} in {report}"))
}

/// `POST /api/admin/plugins/<name>/reload`, without a body, from a client
/// of its own: a reload may rebuild the crate (with LTO, slow on a loaded
/// machine), so it is given as long as a start.
fn reload(app: &TestApp, name: &str, token: Option<&str>) -> Response {
    let path = format!("/api/admin/plugins/{name}/reload");
    Client::waiting(app.client.base.clone(), BUILDING).raw("POST", &path, token, None)
}

fn new_user(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.org")})
}

/// A native plugin beside the components: the shipped hello_world's crate
/// (its library is the one the workspace's build put beside the app).
fn add_native(folder: &Path) {
    let from = shipped_plugins().join("app_plugin_hello_world");
    std::fs::create_dir_all(folder.join("app_plugin_hello_world")).unwrap();
    std::fs::copy(
        from.join("Cargo.toml"),
        folder.join("app_plugin_hello_world/Cargo.toml"),
    )
    .unwrap();
}

/// How many log lines version 1 and version 2 wrote for creating `user`.
fn versions_seen(output: &str, user: &str) -> (usize, usize) {
    let any = format!("user {user} created");
    let v2 = format!("user {user} created (v2)");
    let lines: Vec<&str> = output.lines().filter(|l| l.contains(&any)).collect();
    let second = lines.iter().filter(|l| l.contains(&v2)).count();
    (lines.len() - second, second)
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_crate_is_built_at_startup_rebuilt_on_reload_and_a_broken_version_refused() {
    let folder = tempfile::tempdir().unwrap();
    let dir = probe_crate(folder.path(), "rebuilt", 1);
    add_native(folder.path());
    let app = start(folder.path(), "rebuilt", &[], BUILDING);
    let output = app.proc.output.text();
    assert!(
        output.contains("plugin rebuilt: building") && output.contains("plugin rebuilt: built in"),
        "{output}"
    );
    let probe = entry(&app, "rebuilt");
    assert_eq!(probe["kind"], "component");
    assert_eq!(probe["status"], "loaded");
    assert_eq!(probe["generation"], 1);
    assert_eq!(probe["source"], dir.display().to_string());
    assert_eq!(entry(&app, "hello_world")["kind"], "native");
    expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-a")),
    );

    // Only the admin reloads; a name must be a plugin; a native one never is.
    expect_error(
        403,
        "forbidden",
        reload(&app, "rebuilt", Some("probe-secret")),
    );
    expect_error(401, "unauthorized", reload(&app, "rebuilt", None));
    expect_error(404, "not_found", reload(&app, "nothing", ADMIN));
    let native = expect_error(409, "not_reloadable", reload(&app, "hello_world", ADMIN));
    let message = native["message"].as_str().unwrap();
    assert!(
        message.contains("native plugins are never unloaded"),
        "{message}"
    );

    // A version that does not compile is refused; the first runs on.
    std::fs::write(
        dir.join("src/lib.rs"),
        probe_source(1) + "\nfn broken( {}\n",
    )
    .unwrap();
    let refused = expect_error(422, "reload_refused", reload(&app, "rebuilt", ADMIN));
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("the previous one (generation 1) runs on")
            && message.contains("its build for wasm32-wasip2 failed")
            && message.contains("error"),
        "{message}"
    );
    let probe = entry(&app, "rebuilt");
    assert_eq!(
        (probe["status"].as_str(), probe["generation"].as_i64()),
        (Some("loaded"), Some(1))
    );
    assert!(
        probe["reload_error"].as_str().unwrap().contains("build"),
        "{probe}"
    );
    app.create_user("still-v1");
    expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-b")),
    );

    // A version requiring a plugin that is not there is refused, judged
    // as at startup: the requirement and why it is unmet are named.
    let requires = "requires: Vec::new(),";
    let source = probe_source(1);
    assert!(source.contains(requires), "the probe's manifest changed");
    let needs = "requires: vec![\"hello_world\".into(), \"nobody\".into()],";
    std::fs::write(dir.join("src/lib.rs"), source.replace(requires, needs)).unwrap();
    let refused = expect_error(422, "reload_refused", reload(&app, "rebuilt", ADMIN));
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.ends_with("runs on: it requires `nobody`: `nobody` is not there"),
        "{message}"
    );
    assert_eq!(entry(&app, "rebuilt")["generation"], 1);

    // Version 2 is built and swapped in.
    std::fs::write(dir.join("src/lib.rs"), probe_source(2)).unwrap();
    let reloaded = expect(200, reload(&app, "rebuilt", ADMIN));
    assert_eq!(
        reloaded,
        json!({"plugin": "rebuilt", "reloaded": true, "generation": 2})
    );
    app.create_user("now-v2");
    app.proc.output.wait_for("version 2's line", |out| {
        out.contains("user now-v2 created (v2)")
    });
    let output = app.proc.output.text();
    assert_eq!(versions_seen(&output, "still-v1"), (1, 0));
    assert_eq!(versions_seen(&output, "now-v2"), (0, 1));
    let probe = entry(&app, "rebuilt");
    assert_eq!(
        (probe["generation"].as_i64(), &probe["reload_error"]),
        (Some(2), &Value::Null)
    );
    // Its hooks are those of its new manifest: the token is no longer
    // recognised.
    assert_eq!(
        probe["hooks"],
        json!(["on_user_created", "on_user_modified", "after_user_created"])
    );
    expect_error(
        401,
        "unauthorized",
        app.get("/api/users", Some("probe-secret")),
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 2);

    // Nothing changed: cargo rebuilds nothing, at a reload as at a start.
    expect(200, reload(&app, "rebuilt", ADMIN));
    drop(app);
    let app = start(folder.path(), "rebuilt", &[], BUILDING);
    let output = app.proc.output.text();
    assert!(
        output.contains("plugin rebuilt: up to date, nothing rebuilt"),
        "{output}"
    );
    assert_eq!(entry(&app, "rebuilt")["status"], "loaded");
}

#[test]
fn without_the_wasm_target_the_app_starts_with_its_natives_and_names_the_command() {
    let folder = tempfile::tempdir().unwrap();
    probe_crate(folder.path(), "unbuilt", 1);
    add_native(folder.path());
    // A compiler without the target's library: what rustup's `rustc`
    // answers where the target is not installed.
    let stub = folder.path().join("rustc-without-wasm");
    std::fs::write(&stub, "#!/bin/sh\necho /nonexistent/wasm32-wasip2/lib\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .env("RUSTC", stub.to_str().unwrap());
    let app = TestApp::start_on(db, &options);
    let status = entry(&app, "unbuilt")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        status.starts_with(
            "failed: it is a component crate, and the Rust toolchain lacks the wasm32-wasip2 target"
        ) && status.contains("`rustup target add wasm32-wasip2`"),
        "{status}"
    );
    assert_eq!(entry(&app, "hello_world")["status"], "loaded");
    let output = app.proc.output.text();
    assert!(!output.contains("plugin unbuilt: building"), "{output}");
    app.create_user("alice");
    expect(200, app.get("/plugins/hello_world/user", ADMIN));
}

/// One user created by a writer: when, and the answer's status.
#[derive(Clone, Debug)]
struct Write {
    name: String,
    started: Instant,
    finished: Instant,
    status: u16,
}

/// One operation runs one version of a component, even when a reload
/// lands between two of its hooks: the probe's `on_user_created` for
/// `pin-*` writes to its own table, which the test holds locked meanwhile,
/// then changes the user, which fires its `on_user_modified` in the same
/// operation. The reload happens while the first hook waits; the second
/// hook still runs version 1, and the next operation runs version 2 from
/// its first hook. (PostgreSQL: a lock another connection holds is what
/// makes the first hook wait; on SQLite the writer would wait before it.)
#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn on_postgresql_an_operation_runs_one_version_of_a_component_across_a_reload() {
    use sqlx::Connection;

    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_probe.wasm");
    std::fs::write(&file, probe_wasm(1)).unwrap();
    let version2 = probe_wasm(2);
    // A time limit that outlasts the wait for the lock and the reload.
    let config = "[plugins.probe.sandbox]\ntime_limit_ms = 120000\n";
    let backend = Backend::postgres().expect("TEST_DATABASE_URL");
    let app = launch(backend, folder.path(), config, &[], DEADLINE);
    app.db
        .column("CREATE TABLE plugin_probe_seen (username TEXT NOT NULL)");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut holder = runtime
        .block_on(sqlx::AnyConnection::connect(&app.db.url))
        .unwrap();
    let sql = "BEGIN; LOCK TABLE plugin_probe_seen IN ACCESS EXCLUSIVE MODE";
    runtime
        .block_on(sqlx::raw_sql(sql).execute(&mut holder))
        .unwrap();

    let client = app.client.clone();
    let writer = std::thread::spawn(move || client.post("/api/users", ADMIN, new_user("pin-a")));
    app.proc.output.wait_for("version 1's first hook", |out| {
        out.lines()
            .any(|l| l.contains("user pin-a created") && !l.contains("(v2)"))
    });
    wait_until("its insert waiting for the lock", || {
        app.db.count(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        ) == 1
    });
    replace_file(&file, &version2);
    assert_eq!(expect(200, reload(&app, "probe", ADMIN))["generation"], 2);
    runtime
        .block_on(sqlx::raw_sql("COMMIT").execute(&mut holder))
        .unwrap();
    let (status, body) = writer.join().unwrap();
    assert_eq!(status, 201, "{body}");

    // The next write runs version 2 from its first hook to its last.
    expect(201, app.post("/api/users", ADMIN, new_user("pin-b")));
    let modified = |user: &str, version: &str| {
        format!("user \"{user}\" modified{version}: display name null -> \"pinned\"")
    };
    let last = modified("pin-b", " (v2)");
    app.proc
        .output
        .wait_for("the second write's last line", |out| out.contains(&last));
    let output = app.proc.output.text();
    assert!(output.contains(&modified("pin-a", "")), "{output}");
    assert!(!output.contains(&modified("pin-a", " (v2)")), "{output}");
    assert!(output.contains("user pin-b created (v2)"), "{output}");
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM users WHERE display_name = 'pinned'"),
        2
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_probe_seen"), 2);
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_reload_under_concurrent_writes_loses_no_request_and_each_write_saw_one_version() {
    reload_under_concurrent_writes(Backend::Sqlite);
}

#[test]
#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn on_postgresql_a_reload_under_concurrent_writes_loses_no_request_and_each_write_saw_one_version()
{
    reload_under_concurrent_writes(Backend::postgres().expect("TEST_DATABASE_URL"));
}

/// Writers create users without a pause while the probe is reloaded:
/// every request answers 201, and each creation's hook lines are of one
/// version only (on PostgreSQL an operation that lost a race re-runs, its
/// hooks with it: more than one line then, all of one version).
fn reload_under_concurrent_writes(backend: Backend) {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_probe.wasm");
    std::fs::write(&file, probe_wasm(1)).unwrap();
    let version2 = probe_wasm(2);
    let app = start_on(backend, folder.path(), "probe", &[], DEADLINE);
    assert_eq!(entry(&app, "probe")["generation"], 1);

    // A truncated file is refused; version 1 runs on.
    replace_file(&file, &version2[..version2.len() / 2]);
    let refused = expect_error(422, "reload_refused", reload(&app, "probe", ADMIN));
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("not a valid WebAssembly component"),
        "{message}"
    );
    expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-a")),
    );

    // Writers create users without a pause while version 2 is swapped in.
    const WRITERS: usize = 4;
    const EACH_SIDE: usize = 20;
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, done, stop, writes) = (
                app.client.clone(),
                done.clone(),
                stop.clone(),
                writes.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("w{w}-{i}");
                    let started = Instant::now();
                    let (status, _) = client.post("/api/users", ADMIN, new_user(&name));
                    let finished = Instant::now();
                    writes.lock().unwrap().push(Write {
                        name,
                        started,
                        finished,
                        status,
                    });
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let wait_for_writes = |at_least: usize| {
        wait_until("writes", || done.load(Ordering::Relaxed) >= at_least);
    };
    wait_for_writes(EACH_SIDE);
    replace_file(&file, &version2);
    let asked = Instant::now();
    let reloaded = expect(200, reload(&app, "probe", ADMIN));
    let answered = Instant::now();
    assert_eq!(reloaded["generation"], 2);
    wait_for_writes(done.load(Ordering::Relaxed) + EACH_SIDE);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }

    let writes = writes.lock().unwrap().clone();
    let lost: Vec<_> = writes.iter().filter(|w| w.status != 201).collect();
    assert!(lost.is_empty(), "requests not served: {lost:?}");
    let total = writes.len();
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), total as i64);
    let last = &writes.iter().max_by_key(|w| w.finished).unwrap().name;
    app.proc.output.wait_for("the last write's line", |out| {
        out.contains(&format!("user {last} created"))
    });
    // The log is written by a thread of its own: every line in, then count.
    wait_until("every write's line", || {
        let output = app.proc.output.text();
        writes
            .iter()
            .all(|w| versions_seen(&output, &w.name) != (0, 0))
    });
    let output = app.proc.output.text();
    let (mut first, mut second) = (0, 0);
    for Write {
        name,
        started,
        finished,
        ..
    } in &writes
    {
        let seen = versions_seen(&output, name);
        let runs = seen.0 + seen.1;
        assert!(
            seen.0 == 0 || seen.1 == 0,
            "{name} saw both versions: {seen:?}"
        );
        if backend == Backend::Sqlite {
            assert_eq!(runs, 1, "{name}: {seen:?}");
        } else {
            assert!(runs >= 1, "{name}: {seen:?}");
        }
        if *finished < asked {
            assert_eq!(seen.1, 0, "{name} finished before the reload");
        }
        if *started > answered {
            assert_eq!(seen.0, 0, "{name} started after the reload");
        }
        first += usize::from(seen.0 > 0);
        second += usize::from(seen.1 > 0);
    }
    assert_eq!(first + second, total);
    assert!(
        first >= EACH_SIDE && second >= EACH_SIDE,
        "v1 {first}, v2 {second}"
    );
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn serve_watch_reloads_a_changed_component_file() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_probe.wasm");
    std::fs::write(&file, probe_wasm(1)).unwrap();
    let version2 = probe_wasm(2);
    let app = start(
        folder.path(),
        "probe",
        &["serve", "--watch", "--watch-ms", "50"],
        DEADLINE,
    );
    app.proc
        .output
        .wait_for("the watch", |out| out.contains("watching the components"));
    app.create_user("before");
    replace_file(&file, &version2);
    wait_until("the reload", || entry(&app, "probe")["generation"] == 2);
    app.create_user("after");
    app.proc.output.wait_for("version 2's line", |out| {
        out.contains("user after created (v2)")
    });
    let output = app.proc.output.text();
    assert_eq!(versions_seen(&output, "before"), (1, 0));
    assert_eq!(
        output
            .matches("plugin probe: changed on disk, reloading")
            .count(),
        1,
        "{output}"
    );
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_package_ships_a_component_crate_built_as_its_wasm() {
    let folder = tempfile::tempdir().unwrap();
    probe_crate(folder.path(), "packed", 1);
    add_native(folder.path());
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .args(&["package", dist.to_str().unwrap()]);
    let proc = Proc::spawn(options.command(&db));
    let (status, output) = proc.finish_within(BUILDING);
    assert!(status.success(), "{output}");
    let shipped = dist.join("plugins/app_plugin_packed.wasm");
    assert!(shipped.is_file(), "{output}");
    assert!(dist.join("plugins/libapp_plugin_hello_world.so").is_file());

    // Run from the package, its plugins beside it: no crate, no cargo.
    let mut cmd = std::process::Command::new(dist.join("app"));
    cmd.env_clear()
        .env("PATH", "/nonexistent")
        .env("APP_LISTEN", "127.0.0.1:0")
        .env("APP_DATA_DIR", db.dir.path())
        .env("APP_ADMIN_TOKEN", ADMIN_TOKEN)
        .current_dir(db.dir.path());
    let app = TestApp::wait_up(Proc::spawn(cmd), db);
    let packed = entry(&app, "packed");
    assert_eq!(packed["kind"], "component");
    assert_eq!(packed["status"], "loaded");
    assert_eq!(packed["source"], shipped.display().to_string());
    expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-a")),
    );
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_crate_exporting_another_interface_is_refused_naming_what_it_exports() {
    // The probe built against the same interface under another package
    // name: a component, but not an app plugin.
    let scratch = tempfile::tempdir().unwrap();
    let wit = scratch.path().join("wit");
    std::fs::create_dir_all(&wit).unwrap();
    let ours = std::fs::read_to_string(workspace().join("hookspecs/wit/plugin.wit")).unwrap();
    let version = app::plugins::component::wit::VERSION;
    let package = format!("package app:plugin@{version};");
    assert!(ours.contains(&package));
    let theirs = ours.replace(&package, &format!("package other:plugin@{version};"));
    std::fs::write(wit.join("plugin.wit"), theirs).unwrap();
    let source = probe_source_with(1, &wit).replace("app::plugin::", "other::plugin::");
    let folder = tempfile::tempdir().unwrap();
    probe_crate_with(folder.path(), "stranger", &source);
    probe_crate(folder.path(), "probe", 1);
    let app = start(folder.path(), "probe", &[], BUILDING);
    let status = entry(&app, "stranger")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = format!(
        "failed: not an app plugin: it exports no `app:plugin/guest@{version}` interface \
         (it exports: other:plugin/guest@{version})"
    );
    assert_eq!(status, expected);
    assert_eq!(entry(&app, "probe")["status"], "loaded");
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn serve_watch_rebuilds_and_reloads_an_edited_component_crate() {
    let folder = tempfile::tempdir().unwrap();
    let dir = probe_crate(folder.path(), "watched", 1);
    let app = start(
        folder.path(),
        "watched",
        &["serve", "--watch", "--watch-ms", "50"],
        BUILDING,
    );
    app.proc
        .output
        .wait_for("the watch", |out| out.contains("watching the components"));
    std::fs::write(dir.join("src/lib.rs"), probe_source(2)).unwrap();
    // A build: bounded as a start that builds is.
    let started = Instant::now();
    while entry(&app, "watched")["generation"] != 2 {
        assert!(started.elapsed() < BUILDING, "no reload after {BUILDING:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = app.proc.output.text();
    assert_eq!(
        output.matches("plugin watched: built in").count(),
        2,
        "built at startup, then once for the edit: {output}"
    );
    app.create_user("edited");
    app.proc.output.wait_for("version 2's line", |out| {
        out.contains("user edited created (v2)")
    });
}

/// `app plugin new NAME --component` writes a crate that the app builds for
/// wasm32-wasip2 and runs sandboxed, with the SDK's own `#[hookimpl]`:
/// `tests/fixtures/app_plugin_sandboxed` is its output for `sandboxed`
/// (checked byte for byte; a workspace member, as a crate in `plugins/`
/// is), and a plugin folder holding it (a link to the fixture) loads it as
/// a component whose hook runs at each user creation.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn the_component_template_is_built_and_its_hook_runs_sandboxed() {
    let db = TestDb::create(Backend::Sqlite);
    let scaffolded = tempfile::tempdir().unwrap();
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", scaffolded.path().to_str().unwrap())
        .args(&["plugin", "new", "sandboxed", "--component"]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app_plugin_sandboxed");
    for file in ["Cargo.toml", "src/lib.rs"] {
        let path = |dir: &Path| dir.join(file);
        let generated =
            std::fs::read_to_string(path(&scaffolded.path().join("app_plugin_sandboxed")));
        let committed = std::fs::read_to_string(path(&fixture)).unwrap();
        assert_eq!(
            generated.unwrap(),
            committed,
            "{file}: regenerate the fixture with \
             `APP_PLUGINS_DIR=tests/fixtures cargo run -- plugin new sandboxed --component`"
        );
    }

    let folder = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&fixture, folder.path().join("app_plugin_sandboxed")).unwrap();
    let app = start(folder.path(), "sandboxed", &[], BUILDING);
    let sandboxed = entry(&app, "sandboxed");
    assert_eq!(sandboxed["kind"], "component", "{sandboxed}");
    assert_eq!(sandboxed["status"], "loaded", "{sandboxed}");
    for name in ["ada", "grace"] {
        expect(201, app.post("/api/users", ADMIN, new_user(name)));
    }
    let line = |name: &str| format!("user {name} created");
    app.proc
        .output
        .wait_for("the component's log lines", |out| {
            out.contains(&line("ada")) && out.contains(&line("grace"))
        });
    let output = app.proc.output.text();
    for name in ["ada", "grace"] {
        assert_eq!(output.matches(&line(name)).count(), 1, "{output}");
    }
}

/// The routes of `notes` that `GET /api/admin/plugins` lists.
fn notes_routes(app: &TestApp) -> Vec<Value> {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let routes = report["routes"].as_array().cloned().unwrap_or_default();
    routes
        .into_iter()
        .filter(|r| r["plugin"] == "notes")
        .collect()
}

/// Its routes as `notes_routes` lists them: `GET` on each path, public.
fn gets(paths: &[&str]) -> Vec<Value> {
    let each = paths
        .iter()
        .map(|path| json!({"method": "GET", "path": path, "plugin": "notes"}));
    each.collect()
}

/// A reload is the component's own startup: the routes of the new version
/// replace the old version's as a whole (here the new version is the
/// `hello_world` component, whose one route is `GET /user`), without a
/// restart. (A new version whose routes clash, with its own, a core route
/// or another plugin's, is refused naming both and changes nothing: the
/// unit tests of app/src/plugins/reload.rs, as a component's routes are
/// all under its own prefix and its configuration cannot change between
/// versions.)
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_reload_replaces_a_components_routes_as_a_whole() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_notes.wasm");
    std::fs::copy(workspace_component("notes"), &file).unwrap();
    let app = launch(Backend::Sqlite, folder.path(), "", &[], BUILDING);
    let old = ["/seen/:username", "/count", "/spin", "/panic"];
    let listed: Vec<String> = notes_routes(&app)
        .iter()
        .map(|r| r["path"].to_string())
        .collect();
    for path in old {
        assert!(
            listed.contains(&format!("\"/plugins/notes{path}\"")),
            "{path} in {listed:?}"
        );
    }
    expect_error(401, "unauthorized", app.get("/plugins/notes/count", None));
    expect_error(404, "not_found", app.get("/plugins/notes/user", ADMIN));

    replace_file(
        &file,
        &std::fs::read(workspace_component("hello_world")).unwrap(),
    );
    assert_eq!(
        expect(200, reload(&app, "notes", ADMIN)),
        json!({"plugin": "notes", "reloaded": true, "generation": 2})
    );
    // The new route answers from the new version; the old ones are gone.
    assert_eq!(
        expect(200, app.get("/plugins/notes/user", ADMIN))["name"],
        "admin"
    );
    for path in ["/seen/rita", "/count", "/spin", "/panic"] {
        let path = format!("/plugins/notes{path}");
        expect_error(404, "not_found", app.get(&path, ADMIN));
    }
    assert_eq!(notes_routes(&app), gets(&["/plugins/notes/user"]));
}
