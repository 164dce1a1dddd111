//! Plugins loaded from a folder by the real `app` binary: the shipped
//! crates in `plugins/`, prebuilt libraries, and everything that must be
//! refused without taking the app down.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::*;
use serde_json::{Value, json};

/// The real app on a fresh SQLite database, plugins from `dir`.
fn start(dir: &Path, config: &str) -> TestApp {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .config(config);
    TestApp::start_with(Backend::Sqlite, options)
}

/// Builds a shared library from C source, with `cc` (the linker every Rust
/// build already needs).
fn c_library(dir: &Path, file: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{file}.c"));
    std::fs::write(&c, source).unwrap();
    let out = dir.join(file);
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .expect("running cc");
    assert!(status.success(), "cc failed on {file}");
    std::fs::remove_file(c).unwrap();
    out
}

fn built_hello_world() -> PathBuf {
    app_binary().with_file_name("libapp_plugin_hello_world.so")
}

#[test]
fn hello_world_is_built_with_the_app_and_loaded_from_plugins() {
    let app = start(
        &shipped_plugins(),
        "[plugins.hello_world]\ngreeting = \"Bonjour tout le monde\"\n",
    );
    let log = app.proc.output.text();
    assert!(log.contains("plugin hello_world"), "{log}");
    assert!(
        log.contains("Bonjour tout le monde"),
        "the configured greeting is logged: {log}"
    );
    let me = expect(200, app.get("/plugins/hello_world/user", ADMIN));
    assert_eq!(
        (me["name"].clone(), me["admin"].clone()),
        (json!("admin"), json!(true))
    );
    expect_error(
        401,
        "unauthorized",
        app.get("/plugins/hello_world/user", None),
    );
    app.create_user("ada");
    app.proc
        .output
        .wait_for("the plugin's log of the new user", |log| {
            log.contains("created user ada")
        });
    let entry = plugin_entry(&app, "hello_world");
    assert_eq!(entry["status"], "loaded");
    let hooks: Vec<&str> = entry["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(hooks, ["on_plugins_loaded", "on_user_created"]);
}

#[test]
fn bad_libraries_are_refused_and_the_app_starts_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Not a library at all.
    std::fs::write(d.join("libapp_plugin_text.so"), "this is not an ELF file").unwrap();
    // A library that is not a plugin.
    c_library(
        d,
        "libapp_plugin_bare.so",
        "int nothing_here(void) { return 0; }\n",
    );
    // A plugin built by another compiler against another SDK.
    let foreign = hookspecs::loader::Fingerprint {
        rustc: padded("rustc 0.0.1 (elsewhere)"),
        ..hookspecs::loader::FINGERPRINT
    };
    c_library(
        d,
        "libapp_plugin_foreign.so",
        &fingerprint_library(&foreign, ""),
    );
    // A good plugin, prebuilt, and the same one writable by others.
    std::fs::copy(built_hello_world(), d.join("libapp_plugin_copy.so")).unwrap();
    set_mode(&d.join("libapp_plugin_copy.so"), 0o755);
    std::fs::copy(built_hello_world(), d.join("libapp_plugin_writable.so")).unwrap();
    set_mode(&d.join("libapp_plugin_writable.so"), 0o775);
    // A link leading out of the folder.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(built_hello_world(), elsewhere.path().join("lib.so")).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("lib.so"),
        d.join("libapp_plugin_outside.so"),
    )
    .unwrap();
    // Not named like a plugin: ignored.
    std::fs::write(d.join("README.md"), "notes").unwrap();

    let app = start(d, "");
    let failed = |name: &str, why: &str| {
        let entry = plugin_entry(&app, name);
        let text = entry["status"].as_str().unwrap().to_owned();
        assert!(
            text.starts_with("failed") && text.contains(why),
            "{name}: {text}"
        );
    };
    failed("text", "cannot load");
    failed("bare", "not a plugin");
    failed("foreign", "rustc 0.0.1 (elsewhere)");
    failed("foreign", "rebuild");
    failed("writable", "writable by its group or by everyone");
    failed("outside", "outside the plugin folder");
    assert_eq!(plugin_entry(&app, "copy")["status"], "loaded");
    expect(200, app.get("/plugins/copy/user", ADMIN));
    expect_error(404, "not_found", app.get("/plugins/writable/user", ADMIN));
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    assert!(!report.to_string().contains("README"), "{report}");
    let log = app.proc.output.text();
    assert!(
        log.contains("plugins: 1 loaded, 0 disabled, 5 failed"),
        "{log}"
    );
}

#[test]
fn a_disabled_plugin_is_never_opened() {
    let app = start(
        &shipped_plugins(),
        "[plugins]\ndisabled = [\"hello_world\"]\n",
    );
    assert_eq!(plugin_entry(&app, "hello_world")["status"], "disabled");
    expect_error(
        404,
        "not_found",
        app.get("/plugins/hello_world/user", ADMIN),
    );
    assert!(!app.proc.output.text().contains("Hello, world!"));
}

#[test]
fn a_required_plugin_that_is_missing_or_failed_stops_startup() {
    let db = TestDb::create(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libapp_plugin_broken.so"), "not ELF").unwrap();
    let run = |required: &str| {
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
            .config(&format!("[plugins]\nrequired = [\"{required}\"]\n"));
        run_to_exit(&db, &options)
    };
    let (status, output) = run("absent");
    assert!(!status.success());
    assert!(
        output.contains("required plugin `absent` was not found"),
        "{output}"
    );
    let (status, output) = run("broken");
    assert!(!status.success());
    assert!(
        output.contains("required plugin `broken` is not loaded: failed: cannot load"),
        "{output}"
    );
}

#[test]
fn plugins_list_prints_the_load_report_without_serving() {
    let db = TestDb::create(Backend::Sqlite);
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .config("[plugins]\ndisabled = []\n")
        .args(&["plugins", "list"]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    let line = output
        .lines()
        .find(|l| l.starts_with("hello_world"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(
        line.contains("loaded") && line.contains("on_user_created"),
        "{line}"
    );
    assert!(!output.contains("listening on"), "{output}");
}

#[test]
fn plugin_new_creates_a_plugin_crate_from_the_template() {
    let db = TestDb::create(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let new = |name: &str| {
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
            .args(&["plugin", "new", name]);
        run_to_exit(&db, &options)
    };
    let (status, output) = new("demo_thing");
    assert!(status.success(), "{output}");
    let root = dir.path().join("app_plugin_demo_thing");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"app_plugin_demo_thing\""),
        "{manifest}"
    );
    assert!(manifest.contains("crate-type = [\"dylib\"]"), "{manifest}");
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for expected in [
        "impl AppHooks for DemoThingPlugin",
        "async fn on_user_created",
        "routes.get(\"/hello\"",
        "hookspecs::export_plugin!(DemoThingPlugin::default);",
    ] {
        assert!(lib.contains(expected), "{expected} in {lib}");
    }
    let (status, output) = new("demo_thing");
    assert!(
        !status.success() && output.contains("already exists"),
        "{output}"
    );
    let (status, output) = new("Bad-Name");
    assert!(
        !status.success() && output.contains("is not a plugin name"),
        "{output}"
    );
    assert!(!dir.path().join("app_plugin_Bad-Name").exists());
}

/// The faulty fixture library, prebuilt into a fresh plugin folder.
fn faulty_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let built = app_binary().with_file_name("libapp_plugin_faulty.so");
    std::fs::copy(built, dir.path().join("libapp_plugin_faulty.so")).unwrap();
    set_mode(&dir.path().join("libapp_plugin_faulty.so"), 0o755);
    dir
}

fn start_faulty(dir: &Path, mode: &str, config: &str) -> TestApp {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .env("FAULTY_MODE", mode)
        .config(config);
    TestApp::start_with(Backend::Sqlite, options)
}

#[test]
fn a_plugin_panicking_in_its_registration_fails_alone() {
    let dir = faulty_folder();
    let app = start_faulty(dir.path(), "register", "");
    let text = plugin_entry(&app, "faulty")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("registration function panicked"), "{text}");
    expect(200, app.get("/health", None));
    expect_error(404, "not_found", app.get("/plugins/faulty/ok", ADMIN));
}

#[test]
fn a_plugin_panicking_at_startup_is_removed_with_its_routes() {
    let dir = faulty_folder();
    let app = start_faulty(dir.path(), "startup", "");
    let text = plugin_entry(&app, "faulty")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("on_plugins_loaded") && text.contains("panicked"),
        "{text}"
    );
    // The route it added before panicking is gone, and so are its hooks.
    expect_error(404, "not_found", app.get("/plugins/faulty/ok", ADMIN));
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    assert_eq!(report["hooks"]["on_user_created"], json!([]), "{report}");
    app.create_user("ada");
}

#[test]
fn a_required_plugin_panicking_at_startup_stops_startup() {
    let db = TestDb::create(Backend::Sqlite);
    let dir = faulty_folder();
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
        .env("FAULTY_MODE", "startup")
        .config("[plugins]\nrequired = [\"faulty\"]\n");
    let (status, output) = run_to_exit(&db, &options);
    assert!(!status.success());
    assert!(
        output.contains("startup failed") && output.contains("faulty"),
        "{output}"
    );
}

#[test]
fn a_plugin_error_reaches_the_client_as_the_plugin_wrote_it() {
    let dir = faulty_folder();
    let app = start_faulty(dir.path(), "refuse", "");
    let body = json!({"username": "ada", "email": "ada@example.org"});
    let (status, mut body) = app.post("/api/users", ADMIN, body);
    assert_eq!(status, 409, "{body}");
    let request_id = body["error"].as_object_mut().unwrap().remove("request_id");
    assert!(request_id.is_some_and(|id| id.is_string()), "{body}");
    assert_eq!(
        body,
        json!({"error": {
            "code": "quota_exceeded",
            "message": "at most 2 users here",
            "quota": 2,
            "used": 2,
            "plugin": "faulty",
            "hook": "on_user_created",
        }})
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
}

#[test]
fn a_loaded_plugin_panicking_in_an_entity_hook_rolls_back_and_names_itself() {
    let dir = faulty_folder();
    let app = start_faulty(dir.path(), "hook", "");
    expect(200, app.get("/plugins/faulty/ok", ADMIN));
    let body = json!({"username": "ada", "email": "ada@example.org"});
    let error = expect_error(500, "hook_failed", app.post("/api/users", ADMIN, body));
    assert_eq!(
        (error["plugin"].clone(), error["hook"].clone()),
        (json!("faulty"), json!("on_user_created"))
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    expect(200, app.get("/health", None));
}

#[test]
fn an_invalid_plugin_configuration_fails_that_plugin_naming_the_key() {
    let cases = [
        (
            "[plugins.hello_world]\ngreting = \"typo\"\n",
            "unknown key `greting`",
        ),
        (
            "[plugins.hello_world]\ngreeting = 5\n",
            "`greeting`: invalid type",
        ),
    ];
    for (config, why) in cases {
        let app = start(&shipped_plugins(), config);
        let text = plugin_entry(&app, "hello_world")["status"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.contains("invalid configuration") && text.contains(why),
            "{text}"
        );
        expect_error(
            404,
            "not_found",
            app.get("/plugins/hello_world/user", ADMIN),
        );
        assert_eq!(plugin_entry(&app, "autoinvite")["status"], "loaded");
    }
}

/// Plugin names in the admin report's order (registration order).
fn registered(app: &TestApp) -> Vec<String> {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_plugin_is_registered_after_the_plugins_it_requires() {
    let dir = folder_with(&["early", "hello_world"]);
    let app = start(dir.path(), "");
    assert_eq!(plugin_entry(&app, "early")["status"], "loaded");
    // `early` sorts first by name, but requires `hello_world`.
    assert_eq!(registered(&app), ["app", "hello_world", "early"]);
}

#[test]
fn a_missing_or_cyclic_requirement_fails_the_plugin_with_the_reason() {
    let dir = folder_with(&["early", "cycle_a", "cycle_b"]);
    let app = start(dir.path(), "");
    let text = |name: &str| {
        plugin_entry(&app, name)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let early = text("early");
    assert!(
        early.contains("requires `hello_world`") && early.contains("is not there"),
        "{early}"
    );
    for name in ["cycle_a", "cycle_b"] {
        let why = text(name);
        assert!(
            why.starts_with("failed") && why.contains("requirement cycle"),
            "{name}: {why}"
        );
    }
    expect(200, app.get("/health", None));
}

#[test]
fn a_package_runs_from_its_own_folder_with_its_own_libraries() {
    let db = std::sync::Arc::new(TestDb::create(Backend::Sqlite));
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .args(&["package", dist.to_str().unwrap()]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    assert!(
        dist.join("libhookspecs.so").exists()
            && dist.join("plugins/libapp_plugin_hello_world.so").exists()
    );
    // Started from another folder with nothing of the build environment and
    // no plugin folder configured: it finds its plugins beside itself, and
    // the dynamic loader reports which std and SDK it initialises.
    let mut cmd = Command::new(dist.join("app"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LD_DEBUG", "libs")
        .env("APP_LISTEN", "127.0.0.1:0")
        .env("APP_DATA_DIR", db.dir.path())
        .env("APP_ADMIN_TOKEN", ADMIN_TOKEN)
        .current_dir(db.dir.path());
    let app = TestApp::wait_up(Proc::spawn(cmd), db);
    let me = expect(200, app.get("/plugins/hello_world/user", ADMIN));
    assert_eq!(me["name"], "admin");
    let log = app.proc.output.text();
    for library in ["libstd-", "libhookspecs.so"] {
        let init = log
            .lines()
            .find(|l| l.contains("calling init:") && l.contains(library))
            .unwrap_or_else(|| panic!("{library} not initialised: {log}"));
        assert!(
            init.contains(dist.to_str().unwrap()),
            "{library} came from outside the package: {init}"
        );
    }
}

#[test]
fn an_app_whose_sdk_library_was_rebuilt_says_what_to_do_instead_of_undefined_symbol() {
    let db = TestDb::create(Backend::Sqlite);
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .args(&["package", dist.to_str().unwrap()]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    // Another build of the SDK in place of the one the app was linked
    // with: none of the symbols the app needs from it.
    std::fs::remove_file(dist.join("libhookspecs.so")).unwrap();
    c_library(
        &dist,
        "libhookspecs.so",
        "int nothing_here(void) { return 0; }\n",
    );
    // (cargo gives tests an LD_LIBRARY_PATH leading to the real one)
    let output = Command::new(dist.join("app"))
        .env_remove("LD_LIBRARY_PATH")
        .arg("plugins")
        .arg("list")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("app-main cannot start: the SDK library")
            && stderr.contains("is another build than the one it was linked with")
            && stderr.contains("Fix: `cargo build` at the workspace root"),
        "{stderr}"
    );
    assert!(!stderr.contains("symbol lookup error"), "{stderr}");
    // Without the launcher, the dynamic linker's own words.
    let raw = Command::new(dist.join("app-main"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert_eq!(raw.status.code(), Some(127));
}

/// `text` NUL-padded, as a fingerprint field.
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0; N];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

/// C source of a library exporting `app_plugin_fingerprint` (the loader
/// protocol's `#[repr(C)]` struct, field for field), followed by `extra`.
fn fingerprint_library(fingerprint: &hookspecs::loader::Fingerprint, extra: &str) -> String {
    let bytes = |b: &[u8]| {
        b.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "#include <stdint.h>\n\
         struct fp {{ uint32_t loader_version; uint8_t rustc[96]; uint64_t sdk; uint8_t profile[16]; uint64_t build; void *marker; }};\n\
         const struct fp app_plugin_fingerprint = {{ {}u, {{{}}}, {}ull, {{{}}}, {}ull, 0 }};\n{extra}",
        fingerprint.loader_version,
        bytes(&fingerprint.rustc),
        fingerprint.sdk,
        bytes(&fingerprint.profile),
        fingerprint.build
    )
}

/// C code that needs a symbol no library defines: the dynamic loader
/// refuses the library, as it refuses a plugin built against another build
/// of the SDK.
const UNRESOLVED: &str = "extern void _ZN9hookspecs6loader12build_marker17h0000000000000000E(void);\n\
     void *app_plugin_needs = (void *)&_ZN9hookspecs6loader12build_marker17h0000000000000000E;\n";

#[test]
fn a_stale_or_truncated_plugin_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // Built against the SDK before its last change: the same compiler,
    // profile and flags, another SDK source hash. It also needs symbols
    // the current SDK lacks, so the dynamic loader could not even load it:
    // its fingerprint is read from the file.
    let stale = hookspecs::loader::Fingerprint {
        sdk: hookspecs::loader::FINGERPRINT.sdk ^ 1,
        ..hookspecs::loader::FINGERPRINT
    };
    c_library(
        dir.path(),
        "libapp_plugin_stale.so",
        &fingerprint_library(&stale, UNRESOLVED),
    );
    // The app's own fingerprint, but built against another build of the
    // SDK (other features): it does not load, and says why.
    c_library(
        dir.path(),
        "libapp_plugin_otherbuild.so",
        &fingerprint_library(&hookspecs::loader::FINGERPRINT, UNRESOLVED),
    );
    // A build of the other profile (a debug plugin copied into a release
    // package, or the reverse).
    let other = if hookspecs::loader::FINGERPRINT.profile == padded::<16>("release") {
        "debug"
    } else {
        "release"
    };
    let profile = hookspecs::loader::Fingerprint {
        profile: padded(other),
        ..hookspecs::loader::FINGERPRINT
    };
    c_library(
        dir.path(),
        "libapp_plugin_profile.so",
        &fingerprint_library(&profile, ""),
    );
    // The same, but with the app's own fingerprint: accepted as far as the
    // check goes (it then lacks a registration function).
    c_library(
        dir.path(),
        "libapp_plugin_current.so",
        &fingerprint_library(&hookspecs::loader::FINGERPRINT, ""),
    );
    // A real plugin library cut in half.
    let built = std::fs::read(app_binary().with_file_name("libapp_plugin_hello_world.so")).unwrap();
    std::fs::write(
        dir.path().join("libapp_plugin_truncated.so"),
        &built[..built.len() / 2],
    )
    .unwrap();
    let app = start(dir.path(), "");
    let text = |name: &str| {
        plugin_entry(&app, name)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let stale = text("stale");
    assert!(
        stale.contains("other sources of hookspecs/hooks-core"),
        "{stale}"
    );
    assert!(
        stale.contains("cargo build` at the workspace root"),
        "{stale}"
    );
    let otherbuild = text("otherbuild");
    assert!(
        otherbuild.contains("undefined symbol")
            && otherbuild.contains("another build of the SDK library")
            && otherbuild.contains("cargo build` at the workspace root"),
        "{otherbuild}"
    );
    let ours = if other == "debug" { "release" } else { "debug" };
    let profile = text("profile");
    assert!(
        profile.contains(&format!(
            "it is a `{other}` build, the app a `{ours}` build"
        )) && profile.contains(&format!("target/{ours}/")),
        "{profile}"
    );
    let current = text("current");
    assert!(
        current.contains("exports no `app_plugin_register`"),
        "{current}"
    );
    assert!(
        text("truncated").contains("cannot load"),
        "{}",
        text("truncated")
    );
    expect(200, app.get("/health", None));
}

#[test]
fn a_crate_or_library_without_the_prefix_is_reported_with_the_name_to_give_it() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, package) in [
        ("space_quota", "space_quota"),
        ("app_plugin_quota", "quota"),
    ] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
        std::fs::write(
            dir.path().join(folder).join("Cargo.toml"),
            format!("[package]\nname = \"{package}\"\n"),
        )
        .unwrap();
    }
    std::fs::copy(built_hello_world(), dir.path().join("libgreeter.so")).unwrap();
    set_mode(&dir.path().join("libgreeter.so"), 0o755);
    let app = start(dir.path(), "");
    let text = |name: &str| {
        plugin_entry(&app, name)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (name, fix) in [
        ("space_quota", "name = \"app_plugin_space_quota\""),
        ("quota", "name = \"app_plugin_quota\""),
    ] {
        let why = text(name);
        assert!(
            why.contains(&format!(
                "package name `{name}` lacks the `app_plugin_` prefix"
            )) && why.contains("never loaded")
                && why.contains(fix),
            "{why}"
        );
    }
    let greeter = text("greeter");
    assert!(
        greeter.contains("must be named libapp_plugin_<name>.so"),
        "{greeter}"
    );
    let log = app.proc.output.text();
    assert!(
        log.contains("plugins: 0 loaded, 0 disabled, 3 failed"),
        "{log}"
    );
}

#[test]
fn a_config_table_naming_no_plugin_stops_startup_with_the_closest_name() {
    let db = TestDb::create(Backend::Sqlite);
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
        .config("[plugins.hello_wrold]\ngreeting = \"hi\"\n");
    let (status, output) = run_to_exit(&db, &options);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("table `[plugins.hello_wrold]`, but there is no plugin `hello_wrold`")
            && output.contains("did you mean `[plugins.hello_world]`?"),
        "{output}"
    );
    // Said once, naming the file.
    assert_eq!(output.matches("there is no plugin").count(), 1, "{output}");
    assert!(
        output.contains("/config-") && output.contains(".toml) has a table"),
        "{output}"
    );
    assert!(!output.contains("listening on"), "{output}");
}

#[test]
fn a_configured_plugin_folder_that_is_missing_is_a_warning() {
    let missing = tempfile::tempdir().unwrap().path().join("nowhere");
    let app = start(&missing, "");
    let log = app.proc.output.text();
    let line = log
        .lines()
        .find(|l| l.contains("does not exist"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("WARN") && line.contains(missing.to_str().unwrap()),
        "{line}"
    );
}

#[test]
fn a_library_owned_by_another_user_is_refused() {
    let dir = folder_with(&["hello_world"]);
    let library = dir.path().join("libapp_plugin_hello_world.so");
    // Giving a file away needs root: elsewhere there is nothing to test.
    let given = Command::new("chown").arg("65534").arg(&library).status();
    if !given.is_ok_and(|s| s.success()) {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let app = start(dir.path(), "");
    let text = plugin_entry(&app, "hello_world")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("belongs to user 65534"), "{text}");
}

/// The template of `app plugin new` compiles: `tests/fixtures/app_plugin_scaffolded`
/// is its output for the name `scaffolded` (checked here byte for byte), and a
/// workspace member, so every build compiles it; here it also loads and answers.
#[test]
fn the_plugin_template_builds_loads_and_answers() {
    let db = TestDb::create(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
        .args(&["plugin", "new", "scaffolded"]);
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app_plugin_scaffolded");
    for file in ["Cargo.toml", "src/lib.rs"] {
        let generated =
            std::fs::read_to_string(dir.path().join("app_plugin_scaffolded").join(file)).unwrap();
        let committed = std::fs::read_to_string(fixture.join(file)).unwrap();
        assert_eq!(
            generated, committed,
            "{file}: regenerate the fixture with `APP_PLUGINS_DIR=tests/fixtures cargo run -- plugin new scaffolded`"
        );
    }
    let plugins = folder_with(&["scaffolded"]);
    let app = start(plugins.path(), "");
    let hello = expect(200, app.get("/plugins/scaffolded/hello", ADMIN));
    assert_eq!(hello, json!({"plugin": "scaffolded", "hello": "admin"}));
}

e2e! {
    /// A hook that catches a failed statement's error and returns `Ok`: on
    /// PostgreSQL the error aborted the transaction, so the operation cannot
    /// commit, and says so (500, nothing written) rather than answering 201
    /// for a user that `COMMIT` silently rolled back; on SQLite the failed
    /// statement alone is undone, and the creation commits.
    fn a_caught_database_error_never_reports_a_write_that_did_not_happen(backend) {
        let dir = faulty_folder();
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", dir.path().to_str().unwrap())
            .env("FAULTY_MODE", "swallow");
        let app = TestApp::start_with(backend, options);
        let answer = app.post("/api/users", ADMIN, json!({"username": "ada", "email": "ada@example.org"}));
        let users = expect(200, app.get("/api/users", ADMIN));
        let named_ada = users.as_array().unwrap().iter().filter(|u| u["username"] == "ada").count();
        match backend {
            Backend::Postgres => {
                expect_error(500, "internal", answer);
                assert_eq!(named_ada, 0, "{users}");
            }
            Backend::Sqlite => {
                expect(201, answer);
                assert_eq!(named_ada, 1, "{users}");
            }
        }
    }
}
