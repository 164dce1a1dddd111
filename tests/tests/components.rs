//! Sandboxed plugins: the probe component (tests/components/probe), built
//! for wasm32-wasip2 and dropped into the plugin folder as
//! `app_plugin_probe.wasm`, loaded by the real app. Its hooks veto, pass
//! and authenticate as a native plugin's do; each fault it can commit
//! (busy loop, sleep, panic, memory, stack, exit) is that hook's error
//! only, while healthy requests go on being served.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use e2e_tests::*;
use serde_json::{Value, json};

/// The probe's time limit per call, set in its `[plugins.probe.sandbox]`.
const LIMIT: Duration = Duration::from_millis(300);

/// Beyond the limit, how late a 504 may come: the runtime's own margin
/// (100 ms) and the request's way through a loaded machine.
const LATE: Duration = Duration::from_millis(1500);

/// The probe component, built once per test process.
fn probe() -> &'static PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| build_component(&workspace().join("tests/components/probe"), "probe"))
}

/// The real app with the probe alone in its plugin folder.
fn start(backend: Backend) -> (TestApp, tempfile::TempDir) {
    start_component(backend, &std::fs::read(probe()).unwrap())
}

/// The real app with `component` as `app_plugin_probe.wasm` alone in its
/// plugin folder, configured as the probe.
fn start_component(backend: Backend, component: &[u8]) -> (TestApp, tempfile::TempDir) {
    start_configured(backend, component, LIMIT, "")
}

/// [`start_component`] with the time limit `limit`, and `extra` lines in
/// the probe's table.
fn start_configured(
    backend: Backend,
    component: &[u8],
    limit: Duration,
    extra: &str,
) -> (TestApp, tempfile::TempDir) {
    start_sandboxed(backend, component, limit, extra, "")
}

/// [`start_configured`] with `sandbox` lines in the probe's
/// `[plugins.probe.sandbox]` table too.
fn start_sandboxed(
    backend: Backend,
    component: &[u8],
    limit: Duration,
    extra: &str,
    sandbox: &str,
) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("app_plugin_probe.wasm"), component).unwrap();
    let config = format!(
        "[plugins.probe]\ntoken = \"probe-secret\"\n{extra}\n[plugins.probe.sandbox]\n\
         time_limit_ms = {}\nmemory_mib = 16\n{sandbox}\n",
        limit.as_millis()
    );
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .config(&config);
    (TestApp::start_with(backend, options), folder)
}

fn new_user(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.org")})
}

fn users(app: &TestApp) -> i64 {
    app.db.count("SELECT COUNT(*) FROM users")
}

e2e! {
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_component_vetoes_passes_and_authenticates(backend) {
        let (app, _folder) = start(backend);
        let probe = plugin_entry(&app, "probe");
        assert_eq!(probe["kind"], "component");
        assert_eq!(probe["status"], "loaded");
        assert_eq!(
            probe["hooks"],
            json!(["authenticate", "on_user_created", "on_user_modified", "after_user_created"])
        );
        let alice = id(&app.create_user("alice"));
        let refused = expect_error(422, "probe_refused", app.post("/api/users", ADMIN, new_user("veto-bob")));
        assert_eq!(refused["message"], "the probe refuses veto-bob");
        assert_eq!(refused["plugin"], "probe");
        assert_eq!(refused["hook"], "on_user_created");
        assert_eq!(users(&app), 1, "the vetoed creation rolled back");
        // The app's output is read by a thread of the test: wait for it.
        let logged = |what: &str, line: &str| app.proc.output.wait_for(what, |out| out.contains(line));
        logged("the component's log line", "user alice created");

        // A modification reaches the component as (before, after); an
        // after-commit hook once per committed creation, with its delivery.
        let path = format!("/api/users/{alice}");
        expect(200, app.patch(&path, ADMIN, json!({"display_name": "Alice"})));
        logged("the modification's log line", r#"user "alice" modified: display name null -> "Alice""#);
        let delivered = "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'probe' AND status = 'delivered'";
        wait_until("the delivery", || app.db.count(delivered) == 1);
        logged("the delivery's log line", r#"delivered: event "evt_"#);
        let output = app.proc.output.text();
        assert_eq!(output.matches(r#"delivered: event "evt_"#).count(), 1, "{output}");
        assert!(output.contains(r#"user "alice" delivered: event "evt_"#), "{output}");
        assert!(output.contains("attempt 1"), "{output}");

        // Recognised (an identity without a user: not allowed to list),
        // where another token is not.
        expect_error(403, "forbidden", app.get("/api/users", Some("probe-secret")));
        expect_error(401, "unauthorized", app.get("/api/users", Some("not-the-secret")));
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn every_fault_is_that_hooks_error_and_the_app_serves_on(backend) {
        let (app, _folder) = start(backend);
        let mut healthy = 0;
        for fault in ["spin", "sleep", "panic", "oom", "deep", "exit"] {
            let client = app.client.clone();
            let faulty = std::thread::spawn(move || {
                let started = Instant::now();
                let answer = client.post("/api/users", ADMIN, new_user(&format!("{fault}-x")));
                (answer, started.elapsed())
            });
            // Served alongside: the fault costs its own request only.
            for _ in 0..3 {
                app.create_user(&format!("ok-{healthy}"));
                healthy += 1;
            }
            let (answer, took) = faulty.join().unwrap();
            match fault {
                "spin" | "sleep" => {
                    let error = expect_error(504, "hook_timeout", answer);
                    assert_eq!(error["plugin"], "probe");
                    assert!(took < LIMIT + LATE, "{fault}: a 504 after {took:?}");
                    assert!(took >= LIMIT, "{fault}: a 504 before the limit, after {took:?}");
                }
                _ => {
                    let error = expect_error(500, "hook_failed", answer);
                    let line = logged_500(&app, &error);
                    assert!(line.contains("it trapped"), "{fault}: {line}");
                    if fault == "oom" {
                        let cap = "it reached its memory cap of 16 MiB";
                        assert!(line.contains(cap), "{line}");
                    }
                }
            }
        }
        assert_eq!(users(&app), healthy, "every faulty creation rolled back, every healthy one committed");
        app.create_user("after-the-faults");
        expect(200, app.get("/health", None));
    }
}

#[test]
fn a_file_that_is_no_component_is_refused_and_the_app_starts() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("app_plugin_junk.wasm"),
        b"not WebAssembly",
    )
    .unwrap();
    // A core module (the magic number and version 1), not a component.
    std::fs::write(
        folder.path().join("app_plugin_core.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .unwrap();
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    for name in ["junk", "core"] {
        let status = plugin_status(&app, name);
        assert!(
            status.starts_with("failed: not a valid WebAssembly component"),
            "{name}: {status}"
        );
    }
    app.create_user("alice");
}

e2e! {
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn a_truncated_component_is_refused_and_the_probe_beside_it_loads(backend) {
        let (app, folder) = start(backend);
        assert_eq!(plugin_status(&app, "probe"), "loaded");
        drop(app);
        let whole = std::fs::read(probe()).unwrap();
        std::fs::write(folder.path().join("app_plugin_cut.wasm"), &whole[..whole.len() / 2]).unwrap();
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
            .config("[plugins.probe]\ntoken = \"t\"\n");
        let app = TestApp::start_with(backend, options);
        assert!(plugin_status(&app, "cut").starts_with("failed: not a valid WebAssembly component"));
        assert_eq!(plugin_status(&app, "probe"), "loaded");
        expect_error(422, "probe_refused", app.post("/api/users", ADMIN, new_user("veto-x")));
    }
}

/// A variant of the probe, package `app_plugin_<name>`, built in a copy
/// whose WIT package has one text replaced, and its source maybe one.
fn probe_variant(name: &str, wit_edit: (&str, &str), src_edit: Option<(&str, &str)>) -> PathBuf {
    let src_edits: Vec<(&str, &str)> = src_edit.into_iter().collect();
    probe_against("hookspecs/wit/plugin.wit", name, wit_edit, &src_edits)
}

/// [`probe_variant`], built against the WIT package in `wit` (a path in
/// the workspace).
fn probe_against(
    wit: &str,
    name: &str,
    wit_edit: (&str, &str),
    src_edits: &[(&str, &str)],
) -> PathBuf {
    let copy = tempfile::tempdir().unwrap();
    let edited = |from: &Path, (old, new): (&str, &str)| {
        let text = std::fs::read_to_string(from).unwrap();
        assert!(text.contains(old), "{} has no {old:?}", from.display());
        text.replace(old, new)
    };
    std::fs::create_dir_all(copy.path().join("hookspecs/wit")).unwrap();
    let wit = edited(&workspace().join(wit), wit_edit);
    std::fs::write(copy.path().join("hookspecs/wit/plugin.wit"), wit).unwrap();
    let crate_dir = copy.path().join("tests/components").join(name);
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    let probe_dir = workspace().join("tests/components/probe");
    let package = format!("app_plugin_{name}");
    let manifest = edited(
        &probe_dir.join("Cargo.toml"),
        ("app_plugin_probe", &package),
    );
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).unwrap();
    let mut source = std::fs::read_to_string(probe_dir.join("src/lib.rs")).unwrap();
    for (old, new) in src_edits {
        assert!(source.contains(old), "the probe has no {old:?}");
        source = source.replace(old, new);
    }
    std::fs::write(crate_dir.join("src/lib.rs"), source).unwrap();
    std::fs::copy(probe_dir.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    build_component(&crate_dir, name)
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_of_another_major_version_or_with_unknown_imports_is_refused_naming_why() {
    let ours = app::plugins::component::wit::VERSION;
    let version = format!("app:plugin@{ours};");
    // Built against the WIT package as a version 2 would be.
    let future = probe_variant("future", (&version, "app:plugin@2.0.0;"), None);
    // Calling a host function the app does not have.
    let greedy = probe_variant(
        "greedy",
        (
            "    config: func() -> string;",
            "    config: func() -> string;\n    secrets: func() -> string;",
        ),
        Some(("host::config()", "host::secrets()")),
    );
    let folder = tempfile::tempdir().unwrap();
    for (name, component) in [("future", &future), ("greedy", &greedy), ("probe", probe())] {
        std::fs::copy(
            component,
            folder.path().join(format!("app_plugin_{name}.wasm")),
        )
        .unwrap();
    }
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    let status = plugin_status(&app, "future");
    let expected = format!(
        "failed: built for version 2.0.0 of the plugin interface, but the app provides {ours}: \
         rebuild the plugin against this app's SDK"
    );
    assert!(status.starts_with(&expected), "{status}");
    let status = plugin_status(&app, "greedy");
    assert!(
        status.starts_with("failed: it imports what the app does not provide to components")
            && status.contains("secrets"),
        "{status}"
    );
    assert_eq!(plugin_status(&app, "probe"), "loaded");
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_of_an_older_minor_version_loads_and_runs() {
    // The probe built against version 1.0.0 of the interface, as released
    // (a minor version behind the app's): its imports and its export are
    // 1.0.0's, which the app's 1.1 linker still satisfies. (1.0.0 has no
    // `actor`, which the probe logs.)
    let older = probe_against(
        "tests/components/wit-1.0.0/plugin.wit",
        "older",
        ("package app:plugin@1.0.0;", "package app:plugin@1.0.0;"),
        &[
            ("host::actor()", "None::<String>"),
            // `pin-*` calls 1.1's services and SQL: left out.
            ("\"pin\" => pin(user)?,", ""),
            ("fn pin(", "#[cfg(any())]\nfn pin("),
        ],
    );
    let component = std::fs::read(older).unwrap();
    let names = |needle: &str| {
        component
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(names("app:plugin/guest@1.0.0") && names("app:plugin/host@1.0.0"));
    assert!(!names("app:plugin/guest@1.1") && !names("app:plugin/host@1.1"));
    assert_ne!(app::plugins::component::wit::VERSION, "1.0.0");

    let (app, _folder) = start_component(Backend::Sqlite, &component);
    assert_eq!(plugin_status(&app, "probe"), "loaded");
    app.create_user("alice");
    // Its log import works (the log has a thread of its own: wait for it).
    app.proc
        .output
        .wait_for("its log line", |out| out.contains("user alice created"));
    let refused = expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-bob")),
    );
    assert_eq!(refused["message"], "the probe refuses veto-bob");
    assert_eq!(users(&app), 1);
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_compiled_component_is_cached_and_a_spoilt_entry_compiled_again() {
    // The probe with a custom section of its own: a cache entry no other
    // test shares.
    let component = unique_component(probe(), b't');
    let entries = || cache_entries(&component);

    let (app, _folder) = start_component(Backend::Sqlite, &component);
    assert_eq!(plugin_status(&app, "probe"), "loaded");
    let stored = entries();
    assert_eq!(stored.len(), 1, "one entry for the component: {stored:?}");
    drop(app);

    std::fs::write(&stored[0], b"spoilt").unwrap();
    let (app, _folder) = start_component(Backend::Sqlite, &component);
    assert_eq!(plugin_status(&app, "probe"), "loaded");
    expect_error(
        422,
        "probe_refused",
        app.post("/api/users", ADMIN, new_user("veto-x")),
    );
    assert!(
        app.proc
            .output
            .text()
            .contains("cached component unusable, compiling again")
    );
    assert_ne!(
        std::fs::read(&stored[0]).unwrap(),
        b"spoilt",
        "the entry was written again"
    );
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_sleeping_in_describe_is_refused_at_startup_and_at_each_reload() {
    let probe = std::fs::read(probe()).unwrap();
    // The app starts at all: the sleep in `describe` was cut short.
    let (app, _folder) = start_configured(Backend::Sqlite, &probe, LIMIT, "describe = \"sleep\"");
    let overrun = format!(
        "its manifest failed: it ran over its time limit of {} ms and was interrupted",
        LIMIT.as_millis()
    );
    let status = plugin_status(&app, "probe");
    assert!(
        status.starts_with(&format!("failed: {overrun}")),
        "{status}"
    );
    // Each reload is refused within the limit: none waits on the last.
    for _ in 0..2 {
        let started = Instant::now();
        let path = "/api/admin/plugins/probe/reload";
        let refused = expect_error(422, "reload_refused", app.raw("POST", path, ADMIN, None));
        let took = started.elapsed();
        assert!(
            refused["message"].as_str().unwrap().contains(&overrun),
            "{refused}"
        );
        assert!(took < LIMIT + LATE, "a reload refused after {took:?}");
    }
    app.create_user("alice");
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn busy_components_leave_the_server_answering() {
    // More busy calls than the runtime has workers (one per core), each
    // spinning in `authenticate` for its whole limit.
    let limit = Duration::from_secs(3);
    let probe = std::fs::read(probe()).unwrap();
    let (app, _folder) = start_configured(Backend::Sqlite, &probe, limit, "");
    let spinners: Vec<_> = (0..4)
        .map(|i| {
            let client = app.client.clone();
            std::thread::spawn(move || client.get("/api/users", Some(&format!("spin-{i}"))))
        })
        .collect();
    for i in 0..4 {
        let line = format!("authenticating spin-{i}: spinning");
        app.proc
            .output
            .wait_for("a busy component", |out| out.contains(&line));
    }
    let started = Instant::now();
    expect(200, app.get("/health", None));
    let took = started.elapsed();
    // Without yielding, it would wait for the spinners' limit.
    assert!(
        took < Duration::from_secs(1),
        "/health answered after {took:?}"
    );
    for spinner in spinners {
        expect_error(504, "hook_timeout", spinner.join().unwrap());
    }
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_logs_bounded_lines_of_its_own_only() {
    let (app, _folder) = start(Backend::Sqlite);
    // Two lines ("user flood-x created", its creation count), then 1,000
    // of the flood: 198 of those are written, 802 dropped.
    app.create_user("flood-x");
    app.proc.output.wait_for("the dropped lines' count", |out| {
        out.contains("802 lines dropped")
    });
    let output = app.proc.output.text();
    assert_eq!(output.matches("\\nFAKE line").count(), 198);
    assert!(
        !output.lines().any(|l| l.starts_with("FAKE")),
        "a forged line"
    );
    assert_eq!(output.matches("bytes cut]").count(), 198);
    assert_eq!(output.matches("lines dropped").count(), 1);
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_service_call_with_arguments_over_1_mib_is_refused_with_413() {
    // The probe calling a service with 2 MiB of arguments for `bigargs-*`,
    // its error the hook's (`call-service` is not in interface 1.0.0, which
    // the probe's source also builds against).
    let bigargs = probe_variant(
        "bigargs",
        ("package app:plugin@", "package app:plugin@"),
        Some((
            "        \"exit\" => std::process::exit(3),\n",
            "        \"exit\" => std::process::exit(3),\n        \"bigargs\" => {\n            \
             let args = format!(\"[{:?}]\", \"x\".repeat(2 << 20));\n            \
             host::call_service(host::Service::GetUser, None, &args)?;\n        }\n",
        )),
    );
    let (app, _folder) = start_component(Backend::Sqlite, &std::fs::read(bigargs).unwrap());
    let refused = expect_error(
        413,
        "payload_too_large",
        app.post("/api/users", ADMIN, new_user("bigargs-x")),
    );
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("the argument text of `get_user` exceeds the limit of 1 MiB"),
        "{message}"
    );
    assert_eq!(users(&app), 0);
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_crates_build_script_sees_none_of_the_apps_environment() {
    // The probe as a component crate whose build script fails if it sees
    // the app's secret.
    let folder = tempfile::tempdir().unwrap();
    let probe = workspace().join("tests/components/probe");
    let dir = folder.path().join("app_plugin_envless");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = std::fs::read_to_string(probe.join("Cargo.toml"))
        .unwrap()
        .replace("app_plugin_probe", "app_plugin_envless")
        + "\n[package.metadata.app-plugin]\nkind = \"component\"\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(probe.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let wit = workspace().join("hookspecs/wit");
    let source = std::fs::read_to_string(probe.join("src/lib.rs"))
        .unwrap()
        .replace(
            "\"../../../hookspecs/wit\"",
            &format!("{:?}", wit.display().to_string()),
        );
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    if let Some(secret) = std::env::var_os(\"APP_SECRET\") {\n        \
         panic!(\"the build script saw APP_SECRET = {secret:?}\");\n    }\n}\n",
    )
    .unwrap();
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .env("APP_SECRET", "s3cret");
    // The first build of a component crate compiles its dependencies.
    let app = TestApp::start_within(Backend::Sqlite, options, Duration::from_secs(600));
    assert_eq!(plugin_status(&app, "envless"), "loaded");
    assert!(!app.proc.output.text().contains("s3cret"));
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_error_with_a_success_status_is_a_scrubbed_500() {
    // The probe vetoing `veto-*` with status 200 instead of 422.
    let lying = probe_variant(
        "lying",
        ("package app:plugin@", "package app:plugin@"),
        Some(("refuse(422,", "refuse(200,")),
    );
    let (app, _folder) = start_component(Backend::Sqlite, &std::fs::read(lying).unwrap());
    let error = expect_error(
        500,
        "hook_failed",
        app.post("/api/users", ADMIN, new_user("veto-bob")),
    );
    assert!(!error.to_string().contains("veto-bob"), "{error}");
    let line = logged_500(&app, &error);
    assert!(
        line.contains("it failed with status 200, which is not an error status (400..=599)"),
        "{line}"
    );
    assert_eq!(users(&app), 0);
}

#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn an_instance_is_reused_only_after_a_clean_call_and_keeps_nothing_of_it() {
    // One warm instance, and one request at a time (each waits for its
    // delivery): every call of the probe runs on the pool's instance
    // unless the previous one discarded it.
    let probe = std::fs::read(probe()).unwrap();
    let (app, _folder) = start_sandboxed(Backend::Sqlite, &probe, LIMIT, "", "warm_instances = 1");
    let mut deliveries = 0;
    let mut create = |name: &str, status: u16| {
        let answer = app.post("/api/users", ADMIN, new_user(name));
        if status == 201 {
            expect(201, answer);
            deliveries += 1;
            let delivered = "SELECT COUNT(*) FROM outbox_deliveries \
                             WHERE plugin = 'probe' AND status = 'delivered'";
            wait_until("the delivery", || app.db.count(delivered) == deliveries);
            Value::Null
        } else {
            expect_error(status, "hook_failed", answer)
        }
    };
    // What the probe logged of creating `name`: "creation N of this
    // instance, actor A".
    let creation = |name: &str| {
        let marker = format!("{name}: creation ");
        app.proc
            .output
            .wait_for("the creation's line", |out| out.contains(&marker));
        let output = app.proc.output.text();
        let line = output.lines().find(|l| l.contains(&marker)).unwrap();
        line[line.find(&marker).unwrap() + marker.len()..].to_owned()
    };
    let nth = |name: &str| creation(name).split(' ').next().unwrap().to_owned();

    create("a1", 201);
    assert!(
        creation("a1").starts_with("1 of this instance, actor {"),
        "{}",
        creation("a1")
    );
    assert!(
        creation("a1").contains(r#""admin":true"#),
        "{}",
        creation("a1")
    );
    create("a2", 201);
    assert_eq!(nth("a2"), "2", "reused after a clean call");
    // The deliveries ran on that instance after creations acting as the
    // admin: the context of one call is gone in the next.
    let output = app.proc.output.text();
    for name in ["a1", "a2"] {
        let line = format!(r#"user "{name}" delivered: event "#);
        let line = output.lines().find(|l| l.contains(&line)).unwrap();
        assert!(line.contains("attempt 1 (actor none)"), "{line}");
    }

    // A trap discards it.
    let error = create("panic-x", 500);
    assert!(logged_500(&app, &error).contains("it trapped"));
    create("b1", 201);
    assert_eq!(nth("b1"), "1", "a fresh instance after a trap");

    // A clean call that used up its log budget: the next call logs anew.
    create("flood-x", 201);
    assert_eq!(nth("flood-x"), "2");
    create("b2", 201);
    assert_eq!(nth("b2"), "3");
    app.proc
        .output
        .wait_for("b2's own line", |out| out.contains("user b2 created"));
    assert_eq!(app.proc.output.text().matches("lines dropped").count(), 1);

    // A clean call that left its memory grown past half the cap (10 of
    // 16 MiB): not reused.
    create("hoard-10-x", 201);
    assert_eq!(nth("hoard-10-x"), "4");
    create("c1", 201);
    assert_eq!(
        nth("c1"),
        "1",
        "a fresh instance after one grown past half its cap"
    );

    // Past the cap: the plugin's error, then a fresh instance serves on.
    let error = create("oom-x", 500);
    let line = logged_500(&app, &error);
    assert!(
        line.contains("it reached its memory cap of 16 MiB"),
        "{line}"
    );
    create("d1", 201);
    assert_eq!(nth("d1"), "1");
    assert_eq!(
        users(&app),
        8,
        "every healthy creation committed, no faulty one"
    );
}
