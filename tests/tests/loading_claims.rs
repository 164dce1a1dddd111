//! An adversarial pass over how native plugins are loaded (README, "How
//! plugins are loaded, and what not to do", "Write a plugin" on `requires`
//! and migrations, "Configuration" on `[plugins]`; ARCHITECTURE.md,
//! "Loading plugins"): files that are not plugins, links, permissions, one
//! name claimed twice, odd names, requirements that fail late, migrations
//! that fail halfway. Every case checks that the app starts (or refuses to,
//! as documented), that the admin listing, the log and `app plugins list`
//! say the same thing, and that a healthy plugin keeps answering.
//!
//! Plugins are the workspace's built libraries, copied (or rewritten, or
//! renamed) into a fresh folder given as `APP_PLUGINS_DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use e2e_tests::*;
use serde_json::Value;

// ------------------------------------------------------------ helpers

/// The real app on a fresh SQLite database, plugins from `dir`, with
/// `config` and the environment variables `env`.
fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> TestApp {
    TestApp::start_with(Backend::Sqlite, options(dir, config, env))
}

/// The real app's options: plugins from `dir`, `config`, `env`.
fn options(dir: &Path, config: &str, env: &[(&str, &str)]) -> Options {
    let mut options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .config(config);
    for (key, value) in env {
        options = options.env(key, value);
    }
    options
}

/// `app plugins list` on the plugins of `dir`: exit status and output.
fn list(dir: &Path, config: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let db = TestDb::create(Backend::Sqlite);
    run_to_exit(&db, &options(dir, config, env).args(&["plugins", "list"]))
}

/// The `plugins list` lines of plugin `name` (not the log's lines).
fn list_lines(output: &str, name: &str) -> Vec<String> {
    let start = format!("{name} ");
    output
        .lines()
        .filter(|l| l.starts_with(&start) && !l.contains(" app::"))
        .map(str::to_owned)
        .collect()
}

/// The line `plugins list` prints for an entry of the admin listing:
/// `{name:<24} {status:<10} {hooks}`.
fn list_line_of(entry: &Value) -> String {
    let hooks: Vec<&str> = entry["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{:<24} {:<10} {}",
        entry["name"].as_str().unwrap(),
        entry["status"].as_str().unwrap(),
        hooks.join(", ")
    )
}

/// The admin listing.
fn listing(app: &TestApp) -> Value {
    expect(200, app.get("/api/admin/plugins", ADMIN))
}

/// Every entry of the admin listing named `name`.
fn entries(app: &TestApp, name: &str) -> Vec<Value> {
    listing(app)["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .cloned()
        .collect()
}

/// The plugins implementing `hook`, in call order.
fn implementing(app: &TestApp, hook: &str) -> Vec<String> {
    listing(app)["hooks"][hook]
        .as_array()
        .unwrap_or_else(|| panic!("no hook {hook}"))
        .iter()
        .map(|i| i["plugin"].as_str().unwrap().to_owned())
        .collect()
}

/// Copies plugin `from`'s built library into `dir` as plugin `name`'s
/// library (owner-writable only).
fn copy_as(dir: &Path, from: &str, name: &str) -> PathBuf {
    let to = dir.join(library_file(name));
    std::fs::copy(app_binary().with_file_name(library_file(from)), &to)
        .unwrap_or_else(|e| panic!("copying {from}: {e}"));
    set_mode(&to, 0o755);
    to
}

/// Replaces every occurrence of `from` in `bytes` by `to` (same length):
/// how many there were (at least one).
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut count = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(from.len()).position(|w| w == from) {
        let start = at + found;
        bytes[start..start + to.len()].copy_from_slice(to);
        count += 1;
        at = start + to.len();
    }
    assert!(count > 0, "{} not found", String::from_utf8_lossy(from));
    count
}

/// The `tally` fixture's library in `dir` as plugin `name`, declaring the
/// migrations of its `stage` (1: the table; 2: the table, then a column and
/// an index). `broken`: migration 2's index names a column that does not
/// exist, so migration 2 fails in the database after migration 1 ran.
fn tally_as(dir: &Path, name: &str, stage: u8, broken: bool) -> PathBuf {
    let mut bytes = std::fs::read(app_binary().with_file_name(library_file("tally"))).unwrap();
    replace_all(
        &mut bytes,
        b"tally-stage:1",
        format!("tally-stage:{stage}").as_bytes(),
    );
    if broken {
        replace_all(
            &mut bytes,
            b"ON plugin_tally_entries (username)",
            b"ON plugin_tally_entries (usernamz)",
        );
    }
    let to = dir.join(library_file(name));
    let _ = std::fs::remove_file(&to);
    std::fs::write(&to, bytes).unwrap();
    set_mode(&to, 0o755);
    to
}

/// The tables whose name starts with `prefix`, sorted.
fn tables(db: &TestDb, backend: Backend, prefix: &str) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, {}) = '{prefix}' ORDER BY name",
            prefix.len()
        ),
        Backend::Postgres => format!(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND substr(table_name, 1, {}) = '{prefix}' ORDER BY table_name",
            prefix.len()
        ),
    };
    db.column(&sql)
}

/// Whether `table` has a column `column`.
fn has_column(db: &TestDb, backend: Backend, table: &str, column: &str) -> bool {
    let sql = match backend {
        Backend::Sqlite => {
            format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
        }
        Backend::Postgres => format!(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = '{table}' AND column_name = '{column}'"
        ),
    };
    db.count(&sql) == 1
}

/// `text` percent-encoded as one path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// hello_world answers, users can be created, the app is healthy.
#[track_caller]
fn healthy(app: &TestApp, user: &str) {
    expect(200, app.get("/health", None));
    let me = expect(200, app.get("/plugins/hello_world/user", ADMIN));
    assert_eq!(me["name"], "admin", "{me}");
    app.create_user(user);
}

/// The status of the only entry named `name`.
#[track_caller]
fn status(app: &TestApp, name: &str) -> String {
    let found = entries(app, name);
    assert_eq!(found.len(), 1, "entries named {name}: {found:?}");
    found[0]["status"].as_str().unwrap().to_owned()
}

/// Stops an app with SIGTERM and waits for its exit.
fn stop(app: TestApp) {
    app.proc.signal("TERM");
    let TestApp { proc, .. } = app;
    let (status, output) = proc.finish();
    assert!(status.success(), "{output}");
}

// ------------------------------------------------------------ not plugins

/// README: "A plugin that fails to load is reported and skipped; the app
/// starts without it"; ARCHITECTURE.md, "Loading plugins", 6: the loader
/// refuses "a truncated file", and 4: "Load errors keep their whole
/// cause". Files that are no plugin at all (empty, random bytes, bytes
/// behind an ELF magic, a system library, the SDK library itself, the
/// app's own executable, a folder named like a library) and a real plugin
/// cut at several points: each one fails alone, its status naming the file
/// and the cause, nothing of it is registered, the log says the same at
/// WARN, `plugins list` prints the very same status, and hello_world, beside
/// them, answers. A `[plugins.<name>]` table for a plugin that is there but
/// broken is not "a table naming no plugin": the app starts.
#[test]
fn files_that_are_not_plugins_fail_alone_naming_the_file_and_the_cause() {
    let dir = folder_with(&["hello_world"]);
    let d = dir.path();
    let write = |name: &str, bytes: &[u8]| {
        let path = d.join(library_file(name));
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut random = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    let mut elf_junk = b"\x7fELF\x02\x01\x01".to_vec();
    elf_junk.extend(&random);
    let mut expected: Vec<(String, PathBuf, &str)> = vec![
        ("empty".into(), write("empty", b""), "cannot load"),
        ("random".into(), write("random", &random), "cannot load"),
        ("elfjunk".into(), write("elfjunk", &elf_junk), "cannot load"),
    ];
    // Shared libraries of other programs: no fingerprint, never opened.
    let sdk = d.join(library_file("sdk"));
    std::fs::copy(app_binary().with_file_name("libhookspecs.so"), &sdk).unwrap();
    expected.push(("sdk".into(), sdk, "not a plugin"));
    let exe = d.join(library_file("exe"));
    std::fs::copy(app_binary(), &exe).unwrap();
    expected.push(("exe".into(), exe, "not a plugin"));
    let system = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    if let Some(libc) = system {
        let copy = d.join(library_file("libc"));
        std::fs::copy(libc, &copy).unwrap();
        set_mode(&copy, 0o755);
        expected.push(("libc".into(), copy, "not a plugin"));
    }
    let folder = d.join(library_file("folder"));
    std::fs::create_dir(&folder).unwrap();
    set_mode(&folder, 0o755);
    expected.push((
        "folder".into(),
        folder,
        "it is a directory, not a regular file",
    ));
    // A real plugin cut: inside its header, in its first page, in its
    // middle, before its section headers, and by one byte.
    let whole = std::fs::read(built("hello_world")).unwrap();
    let section_headers = u64::from_le_bytes(whole[0x28..0x30].try_into().unwrap()) as usize;
    for (name, len) in [
        ("cut_header", 40),
        ("cut_page", 4096),
        ("cut_middle", whole.len() / 2),
        ("cut_sections", section_headers),
        ("cut_last_byte", whole.len() - 1),
    ] {
        expected.push((name.into(), write(name, &whole[..len]), "cannot load"));
    }
    let config = "[plugins.empty]\nanything = 1\n";
    let app = start(d, config, &[]);
    let log = app.proc.output.text();
    let (code, listed) = list(d, config, &[]);
    assert!(code.success(), "{listed}");
    for (name, path, cause) in &expected {
        let found = entries(&app, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        let entry = &found[0];
        let text = entry["status"].as_str().unwrap();
        let path = path.display().to_string();
        assert!(
            text.starts_with("failed: ") && text.contains(&path) && text.contains(cause),
            "{name}: {text}"
        );
        assert_eq!(entry["kind"], "native", "{entry}");
        assert_eq!(entry["source"], path.as_str(), "{entry}");
        assert_eq!(entry["hooks"], json!([]), "{entry}");
        let line = format!("plugin {name} (native, {path}): {text}");
        let logged = log
            .lines()
            .find(|l| l.ends_with(&line))
            .unwrap_or_else(|| panic!("no log line `{line}` in {log}"));
        assert!(logged.contains(" WARN "), "{logged}");
        assert_eq!(list_lines(&listed, name), [list_line_of(entry)], "{listed}");
    }
    let failed = expected.len();
    assert!(
        log.contains(&format!("plugins: 1 loaded, 0 disabled, {failed} failed")),
        "{log}"
    );
    assert!(
        listed.contains(&format!("plugins: 1 loaded, 0 disabled, {failed} failed")),
        "{listed}"
    );
    let report = listing(&app);
    let routes: Vec<&str> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["/plugins/hello_world/user"]);
    assert_eq!(implementing(&app, "on_user_created"), ["hello_world"]);
    healthy(&app, "ada");
}

/// The path of plugin `name`'s built library.
fn built(name: &str) -> PathBuf {
    app_binary().with_file_name(library_file(name))
}

/// README: "A plugin that fails to load is reported and skipped; the app
/// starts without it". A named pipe named like a library (a leftover of a
/// script, or planted by a user who may write the folder) is no library:
/// it must fail like any other file that is not one, not block startup
/// forever on `open` waiting for a writer.
#[test]
fn a_named_pipe_named_like_a_library_fails_alone_instead_of_blocking_startup() {
    let dir = folder_with(&["hello_world"]);
    let fifo = dir.path().join(library_file("pipe"));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (code, listed) = list(dir.path(), "", &[]);
    assert!(code.success(), "{listed}");
    let line = list_lines(&listed, "pipe").join("\n");
    assert!(
        line.contains("failed") && line.contains(&fifo.display().to_string()),
        "{listed}"
    );
    let app = start(dir.path(), "", &[]);
    let text = status(&app, "pipe");
    assert!(
        text.starts_with("failed: ") && text.contains(&fifo.display().to_string()),
        "{text}"
    );
    healthy(&app, "ada");
}

// ------------------------------------------------------------ links and permissions

/// README: "The app refuses a library that is writable by its group or by
/// everyone, owned by another user, or a link leading outside the plugin
/// folder." A link that stays inside the folder (to a plugin of the folder,
/// into a subfolder) is a plugin of its own name, loaded with its own
/// table; a hard link is the file itself (its owner and mode are checked)
/// and loads like a copy. Refused, each naming the link: a relative link
/// out (`../`), a link to a link out, a broken link, a link to a folder, a
/// library writable by everyone (`o+w` alone), and a link inside to such a
/// library. Nothing refused is registered, and the rest serve.
#[test]
fn links_inside_the_folder_load_and_links_out_or_to_writable_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("plugins");
    std::fs::create_dir(&d).unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let hello = copy_as(&d, "hello_world", "hello_world");
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, d.join(library_file(name))).unwrap();
    };
    link(&library_file("hello_world"), "inlink");
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::copy(&hello, d.join("sub/real.so")).unwrap();
    link("sub/real.so", "sublink");
    std::fs::hard_link(&hello, d.join(library_file("hard_in"))).unwrap();
    std::fs::copy(&hello, outside.join("o.so")).unwrap();
    std::fs::hard_link(outside.join("o.so"), d.join(library_file("hard_out"))).unwrap();
    link("../outside/o.so", "relout");
    link(&library_file("relout"), "chain");
    link("nowhere.so", "broken");
    link("sub", "dirlink");
    let open = copy_as(&d, "hello_world", "open");
    set_mode(&open, 0o757);
    std::fs::copy(&hello, d.join("sub/open.so")).unwrap();
    set_mode(&d.join("sub/open.so"), 0o757);
    link("sub/open.so", "openlink");
    let config = "[plugins.inlink]\ngreeting = \"through the link\"\n\
                  [plugins.hard_in]\ngreeting = \"through the hard link\"\n";
    let app = start(&d, config, &[]);
    for name in ["hello_world", "inlink", "sublink", "hard_in", "hard_out"] {
        assert_eq!(status(&app, name), "loaded", "{name}");
        let me = expect(200, app.get(&format!("/plugins/{name}/user"), ADMIN));
        assert_eq!(me["name"], "admin");
    }
    let log = app.proc.output.text();
    for greeting in ["through the link", "through the hard link", "Hello, world!"] {
        assert!(log.contains(greeting), "{greeting}: {log}");
    }
    let path = |name: &str| d.join(library_file(name)).display().to_string();
    let target = outside.join("o.so").canonicalize().unwrap();
    for (name, why) in [
        (
            "relout",
            format!(
                "{} is a link leading outside the plugin folder, to {}",
                path("relout"),
                target.display()
            ),
        ),
        (
            "chain",
            format!(
                "{} is a link leading outside the plugin folder, to {}",
                path("chain"),
                target.display()
            ),
        ),
        ("broken", format!("{} is a broken link", path("broken"))),
        (
            "dirlink",
            "it is a directory, not a regular file".to_owned(),
        ),
        (
            "open",
            format!(
                "{} is writable by its group or by everyone (mode 757)",
                path("open")
            ),
        ),
        (
            "openlink",
            "is writable by its group or by everyone (mode 757)".to_owned(),
        ),
    ] {
        let text = status(&app, name);
        assert!(
            text.starts_with("failed: ") && text.contains(&why) && text.contains(&path(name)),
            "{name}: {text}"
        );
        expect_error(
            404,
            "not_found",
            app.get(&format!("/plugins/{name}/user"), ADMIN),
        );
    }
    assert_eq!(
        implementing(&app, "on_user_created"),
        ["sublink", "inlink", "hello_world", "hard_out", "hard_in"],
        "later registered runs first"
    );
    assert!(
        log.contains("plugins: 5 loaded, 0 disabled, 6 failed"),
        "{log}"
    );
    healthy(&app, "ada");
}

/// README: "The app refuses a library that is writable by its group or by
/// everyone, owned by another user". In a plugin folder everyone may write,
/// anyone can rename a library over another's name, or swap the file
/// between the check and the load: what the file check is there to
/// prevent. (The adversarial pass found such a folder trusted without a
/// word.) README now: "It refuses every plugin of a plugin folder that is
/// writable by its group or by everyone", as the app already did for a
/// component crate's folders and its compiled-code cache: each plugin
/// fails naming the folder, and the app starts without them.
#[test]
fn a_plugin_folder_writable_by_everyone_is_not_trusted_silently() {
    let dir = folder_with(&["hello_world"]);
    set_mode(dir.path(), 0o777);
    let app = start(dir.path(), "", &[]);
    assert_eq!(
        status(&app, "hello_world"),
        format!(
            "failed: the plugin folder is not trusted: {} is writable by its group or by \
             everyone (mode 777): `chmod go-w` it",
            dir.path().display()
        )
    );
    expect_error(
        404,
        "not_found",
        app.get("/plugins/hello_world/user", ADMIN),
    );
    expect(200, app.get("/health", None));
    app.create_user("ada");
}

// ------------------------------------------------------------ one name, two sources

/// ARCHITECTURE.md, "Loading plugins": "A plugin is a crate in `plugins/`
/// ... or a prebuilt `libapp_plugin_<name>.so` placed there". When two of
/// them claim one name (a crate and a prebuilt copy of it, a library and a
/// component, two crate folders with one package name), neither loads and
/// both say so, naming both sources; the admin listing has one entry per
/// source and `plugins list` one line per source; a table for that name is
/// accepted (the plugin is there); the rest serve; and a `required`
/// plugin found twice stops startup with the reason.
#[test]
fn one_name_claimed_twice_fails_both_naming_both() {
    let dir = folder_with(&["hello_world", "autoinvite"]);
    let d = dir.path();
    copy_as(d, "hello_world", "twin");
    // hello_world, also as a crate folder.
    std::fs::create_dir(d.join("app_plugin_hello_world")).unwrap();
    std::fs::copy(
        workspace_plugins().join("app_plugin_hello_world/Cargo.toml"),
        d.join("app_plugin_hello_world/Cargo.toml"),
    )
    .unwrap();
    // twin, also as a component file.
    std::fs::write(d.join("app_plugin_twin.wasm"), b"\0asm").unwrap();
    // two crate folders of one package name.
    for folder in ["first", "second"] {
        std::fs::create_dir(d.join(folder)).unwrap();
        std::fs::write(
            d.join(folder).join("Cargo.toml"),
            "[package]\nname = \"app-plugin-dup\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
    }
    let config = "[plugins.twin]\ngreeting = \"twin-greeting-6d1f\"\n";
    let app = start(d, config, &[]);
    let (code, listed) = list(d, config, &[]);
    assert!(code.success(), "{listed}");
    let cases = [
        (
            "hello_world",
            vec![
                d.join("app_plugin_hello_world"),
                d.join(library_file("hello_world")),
            ],
        ),
        (
            "twin",
            vec![d.join("app_plugin_twin.wasm"), d.join(library_file("twin"))],
        ),
        ("dup", vec![d.join("first"), d.join("second")]),
    ];
    for (name, sources) in &cases {
        let found = entries(&app, name);
        let mut listed_sources: Vec<&str> = found
            .iter()
            .map(|e| e["source"].as_str().unwrap())
            .collect();
        listed_sources.sort_unstable();
        let mut wanted: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
        wanted.sort();
        assert_eq!(listed_sources, wanted, "{name}: {found:?}");
        let why = format!(
            "failed: the plugin `{name}` is found twice in the folder, as {} and {}: remove all but one",
            wanted[0], wanted[1]
        );
        for entry in &found {
            assert_eq!(entry["status"], why.as_str(), "{entry}");
            assert_eq!(entry["hooks"], json!([]), "{entry}");
        }
        assert_eq!(
            list_lines(&listed, name),
            found.iter().map(list_line_of).collect::<Vec<_>>(),
            "{listed}"
        );
    }
    assert_eq!(status(&app, "autoinvite"), "loaded");
    assert!(!app.proc.output.text().contains("twin-greeting-6d1f"));
    assert_eq!(implementing(&app, "on_user_created"), ["autoinvite"]);
    expect(200, app.get("/health", None));
    app.create_user("ada");
    expect_error(
        404,
        "not_found",
        app.get("/plugins/hello_world/user", ADMIN),
    );
    drop(app);

    let db = TestDb::create(Backend::Sqlite);
    let required = options(d, "[plugins]\nrequired = [\"hello_world\"]\n", &[]);
    let (code, output) = run_to_exit(&db, &required);
    assert!(!code.success(), "{output}");
    assert!(
        output.contains("required plugin `hello_world` is not loaded: failed: the plugin `hello_world` is found twice"),
        "{output}"
    );
    assert!(!output.contains("listening on"), "{output}");
}

/// README: "A prebuilt `libapp_plugin_<name>.so` dropped into the folder is
/// loaded like a crate"; "A plugin may own tables, named `plugin_<name>_*`
/// ... and refuses a migration that creates any other table". A plugin's
/// library copied under another name is the plugin its file names: its
/// own table, its own routes, beside the original. One that owns tables
/// (tally) renamed keeps creating the original's tables, which the new
/// name does not own: it fails with the table named, leaving no table or
/// history of its own behind, while the original migrates and counts.
#[test]
fn a_renamed_library_is_the_plugin_its_file_names() {
    let dir = folder_with(&["hello_world", "tally"]);
    copy_as(dir.path(), "hello_world", "greeter");
    copy_as(dir.path(), "tally", "tallish");
    let config = "[plugins.greeter]\ngreeting = \"greeter speaking\"\n\
                  [plugins.hello_world]\ngreeting = \"hello speaking\"\n";
    let app = start(dir.path(), config, &[]);
    assert_eq!(status(&app, "greeter"), "loaded");
    assert_eq!(status(&app, "tally"), "loaded");
    let me = expect(200, app.get("/plugins/greeter/user", ADMIN));
    assert_eq!(me["name"], "admin");
    let log = app.proc.output.text();
    assert!(
        log.contains("greeter speaking") && log.contains("hello speaking"),
        "{log}"
    );
    let text = status(&app, "tallish");
    assert_eq!(
        text,
        "failed: migration 1 creates table `plugin_tally_entries`; a plugin's tables are named `plugin_tallish_*`"
    );
    assert_eq!(
        tables(&app.db, Backend::Sqlite, "plugin_tallish"),
        Vec::<String>::new()
    );
    assert_eq!(
        tables(&app.db, Backend::Sqlite, "plugin_tally"),
        ["plugin_tally_entries", "plugin_tally_migrations"]
    );
    assert_eq!(
        implementing(&app, "on_user_created"),
        ["hello_world", "greeter", "tally"],
        "tally is trylast; tallish is gone"
    );
    healthy(&app, "ada");
    assert_eq!(
        app.db.column("SELECT username FROM plugin_tally_entries"),
        ["ada"],
        "counted once: by tally, not by its renamed copy"
    );
}

// ------------------------------------------------------------ names

/// README, "How plugins are loaded": "A plugin's name ... is lowercase
/// letters, digits and `_`, starting with a letter, and not `app`"; a
/// library named otherwise "is reported as failed, naming the file". (The
/// adversarial pass found these names loading and answering at a
/// percent-encoded path; the rule `app plugin new` applies is now the
/// loader's.) Names a crate could not have (a space, a non-ASCII letter, a
/// dot, capitals, a leading digit or `_`) fail, naming the file and the
/// rule, are never opened (the table of `a b` is accepted, its greeting
/// never logged) and answer nothing; a name of 40 characters loads and
/// answers under its name, one of 41 fails (its tables' names would not
/// fit PostgreSQL's 63 bytes).
#[test]
fn odd_file_names_fail_naming_the_file_and_the_rule() {
    let dir = folder_with(&["hello_world"]);
    let long = "l".repeat(40);
    let too_long = "l".repeat(41);
    let refused = ["a b", "héllo", "x.y", "Upper", "2x", "_x"];
    for name in refused {
        copy_as(dir.path(), "hello_world", name);
    }
    copy_as(dir.path(), "hello_world", &long);
    copy_as(dir.path(), "hello_world", &too_long);
    let app = start(
        dir.path(),
        "[plugins.\"a b\"]\ngreeting = \"spaced greeting\"\n",
        &[],
    );
    for name in refused {
        let file = dir.path().join(library_file(name));
        assert_eq!(
            status(&app, name),
            format!(
                "failed: `{name}` is not a plugin name: use lowercase letters, digits and `_`, \
                 starting with a letter: rename {}",
                file.display()
            )
        );
        expect_error(
            404,
            "not_found",
            app.get(&format!("/plugins/{}/user", segment(name)), ADMIN),
        );
    }
    assert_eq!(status(&app, &long), "loaded");
    let file = dir.path().join(library_file(&too_long));
    assert_eq!(
        status(&app, &too_long),
        format!(
            "failed: `{too_long}` is too long for a plugin name: at most 40 characters, so \
             that its tables' names (`plugin_<name>_...`) fit PostgreSQL's 63 bytes: rename {}",
            file.display()
        )
    );
    let me = expect(200, app.get(&format!("/plugins/{long}/user"), ADMIN));
    assert_eq!(me["name"], "admin");
    assert!(!app.proc.output.text().contains("spaced greeting"));
    healthy(&app, "ada");
}

/// README: routes are added "under `/plugins/<name>/`", and "where a
/// literal path and a parameter both match ..., the literal one answers".
/// A library named `libapp_plugin_:any.so` must not get routes under every
/// other plugin's prefix: its name becomes a path parameter, and it answers
/// `/plugins/<anything>/...` for any plugin that has no such route (here
/// the scaffolded plugin's `/hello`, renamed, answering under hello_world's
/// prefix and under a prefix no plugin has).
#[test]
fn a_plugin_named_like_a_path_parameter_does_not_answer_for_other_plugins() {
    let dir = folder_with(&["hello_world"]);
    copy_as(dir.path(), "scaffolded", ":any");
    let app = start(dir.path(), "", &[]);
    for path in ["/plugins/hello_world/hello", "/plugins/nobody/hello"] {
        expect_error(404, "not_found", app.get(path, ADMIN));
    }
    healthy(&app, "ada");
}

/// README: "loaded at startup (one log line per plugin: loaded, ... or
/// failed and why; then a summary ...)"; "`plugins list` prints what
/// loading finds (each plugin found ...)". A file name holding a line break
/// must not split its plugin's log line in two, nor let the file forge a
/// line of `plugins list` (here one saying a plugin `forged` is loaded).
#[test]
fn a_line_break_in_a_file_name_forges_no_line_of_the_log_or_of_plugins_list() {
    let dir = folder_with(&["hello_world"]);
    let forged = "x\nforged                   loaded     on_user_created";
    copy_as(dir.path(), "hello_world", forged);
    let (code, listed) = list(dir.path(), "", &[]);
    assert!(code.success(), "{listed}");
    assert!(
        !listed.lines().any(|l| l.starts_with("forged")),
        "a forged line: {listed}"
    );
    let app = start(dir.path(), "", &[]);
    let log = app.proc.output.text();
    assert!(
        !log.lines().any(|l| l.starts_with("forged")),
        "a forged line: {log}"
    );
    healthy(&app, "ada");
}

/// README: routes are "mounted under `/plugins/<name>/`"; `app plugin new`
/// refuses a name that is not one. A library named `libapp_plugin_.so` has
/// no name at all. Docs silent: a user would expect it refused at load,
/// naming the file, rather than served at `/plugins//user` (a path with
/// `//`, which the route check refuses for any plugin's own path).
#[test]
fn a_library_with_an_empty_plugin_name_is_refused_naming_the_file() {
    let dir = folder_with(&["hello_world"]);
    let file = copy_as(dir.path(), "hello_world", "");
    let app = start(dir.path(), "", &[]);
    let text = status(&app, "");
    assert!(
        text.starts_with("failed: ") && text.contains(&file.display().to_string()),
        "{text}"
    );
    expect_error(404, "not_found", app.get("/plugins//user", ADMIN));
    healthy(&app, "ada");
}

/// README, `GET /api/admin/plugins`: "every plugin and its status, each
/// hook's implementations". A library named `libapp_plugin_app.so` cannot
/// take the app's own name (README: a plugin's name is "not `app`"): it
/// fails as found, naming the file, and the built-in plugin keeps
/// authenticating. The failed entry must not claim the hooks of the app's
/// own plugin (the listing matches hooks to entries by name).
#[test]
fn a_library_named_app_fails_and_claims_none_of_the_apps_hooks() {
    let dir = folder_with(&["hello_world"]);
    let file = copy_as(dir.path(), "hello_world", "app");
    let app = start(dir.path(), "", &[]);
    let found = entries(&app, "app");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["kind"], "built in");
    assert_eq!(found[0]["status"], "loaded");
    let library = &found[1];
    assert_eq!(
        library["status"],
        format!(
            "failed: `app` is the name of the app's own plugin: rename {}",
            file.display()
        )
    );
    expect_error(404, "not_found", app.get("/plugins/app/user", ADMIN));
    healthy(&app, "ada");
    assert_eq!(library["hooks"], json!([]), "{library}");
}

/// README: "A plugin may own tables, named `plugin_<name>_*`"; a plugin's
/// name "is lowercase letters, digits and `_`". A name with capitals
/// cannot be written into a table's name: a plugin so named that ships
/// migrations (tally's code as `Tally`) fails as found, with the reason,
/// alone, leaving no table; tally itself migrates and counts.
#[test]
fn a_plugin_whose_name_cannot_name_tables_fails_alone_leaving_no_table() {
    let dir = folder_with(&["hello_world", "tally"]);
    let file = copy_as(dir.path(), "tally", "Tally");
    let app = start(dir.path(), "", &[]);
    assert_eq!(
        status(&app, "Tally"),
        format!(
            "failed: `Tally` is not a plugin name: use lowercase letters, digits and `_`, \
             starting with a letter: rename {}",
            file.display()
        )
    );
    assert_eq!(status(&app, "tally"), "loaded");
    assert_eq!(
        tables(&app.db, Backend::Sqlite, "plugin_"),
        ["plugin_tally_entries", "plugin_tally_migrations"]
    );
    healthy(&app, "ada");
    assert_eq!(
        app.db.column("SELECT username FROM plugin_tally_entries"),
        ["ada"]
    );
}

/// ARCHITECTURE.md, "Loading plugins": "Mistakes get a message that says
/// what to do: a crate in `plugins/` whose package name lacks the prefix
/// ... or a library named without it is reported as failed with the name
/// to give it". `libgreeter.so` is (tests/tests/loading.rs); a library
/// named like its crate (`app_plugin_one.so`, without `lib`) or with no
/// prefix at all (`four.so`) must be too, not ignored with a DEBUG line.
#[test]
fn a_library_named_without_lib_or_any_prefix_is_reported_with_the_name_to_give_it() {
    let dir = folder_with(&["hello_world"]);
    let mut files = Vec::new();
    // `hello_world.so`: a stray beside the real hello_world, which loads
    // all the same (a file that can never load is no twin of it).
    for file in ["app_plugin_one.so", "four.so", "hello_world.so"] {
        let path = dir.path().join(file);
        std::fs::copy(built("hello_world"), &path).unwrap();
        set_mode(&path, 0o755);
        files.push(path);
    }
    let app = start(dir.path(), "", &[]);
    let report = listing(&app);
    for path in &files {
        let path = path.display().to_string();
        let entry = report["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["source"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} is not reported: {report}"))
            .clone();
        let text = entry["status"].as_str().unwrap();
        assert!(
            text.starts_with("failed: ") && text.contains("libapp_plugin_"),
            "{text}"
        );
    }
    let real = dir.path().join(library_file("hello_world"));
    let hello = entries(&app, "hello_world");
    let loaded = hello
        .iter()
        .find(|e| e["source"] == real.display().to_string().as_str());
    assert_eq!(
        loaded.map(|e| &e["status"]),
        Some(&json!("loaded")),
        "{hello:?}"
    );
    healthy(&app, "ada");
}

// ------------------------------------------------------------ requires

/// README: "It is registered after them, and fails (with the reason) when
/// one is missing, failed, or part of a requirement cycle." Through a
/// chain: `early` requires `hello_world`, which here is the code of
/// `cycle_a` (it requires `cycle_b`), and `cycle_b` is that same code too:
/// it requires itself. Each fails with the reason down the chain, in the
/// listing, the log and `plugins list` alike; and a `required` plugin
/// whose requirement is missing stops startup naming it.
#[test]
fn a_failed_requirement_fails_every_plugin_down_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    copy_as(dir.path(), "early", "early");
    copy_as(dir.path(), "cycle_a", "hello_world");
    copy_as(dir.path(), "cycle_a", "cycle_b");
    let app = start(dir.path(), "", &[]);
    let (code, listed) = list(dir.path(), "", &[]);
    assert!(code.success(), "{listed}");
    let cycle = "it requires `cycle_b`: requirement cycle cycle_b -> cycle_b";
    let hello = format!("it requires `cycle_b`: `cycle_b` did not load: {cycle}");
    let early = format!("it requires `hello_world`: `hello_world` did not load: {hello}");
    for (name, why) in [
        ("cycle_b", cycle.to_owned()),
        ("hello_world", hello),
        ("early", early),
    ] {
        let found = entries(&app, name);
        assert_eq!(found[0]["status"], format!("failed: {why}"), "{name}");
        assert_eq!(found[0]["hooks"], json!([]));
        assert_eq!(list_lines(&listed, name), [list_line_of(&found[0])]);
    }
    assert!(
        app.proc
            .output
            .text()
            .contains("plugins: 0 loaded, 0 disabled, 3 failed")
    );
    expect(200, app.get("/health", None));
    app.create_user("ada");
    drop(app);

    let alone = folder_with(&["early"]);
    let db = TestDb::create(Backend::Sqlite);
    let required = options(alone.path(), "[plugins]\nrequired = [\"early\"]\n", &[]);
    let (code, output) = run_to_exit(&db, &required);
    assert!(!code.success(), "{output}");
    assert!(
        output.contains(
            "required plugin `early` is not loaded: failed: it requires `hello_world`: `hello_world` is not there"
        ),
        "{output}"
    );
}

/// README: a plugin that needs others "is registered after them, and fails
/// (with the reason) when one is missing, failed, or part of a requirement
/// cycle"; "disabled = [...] # never opened". A disabled requirement is not
/// there for the plugin that needs it: `early` must fail, naming
/// `hello_world`, and none of its hooks may run.
#[test]
fn a_disabled_requirement_fails_the_plugin_that_needs_it() {
    let dir = folder_with(&["early", "hello_world"]);
    let app = start(dir.path(), "[plugins]\ndisabled = [\"hello_world\"]\n", &[]);
    assert_eq!(status(&app, "hello_world"), "disabled");
    expect(200, app.get("/health", None));
    app.create_user("ada");
    let text = status(&app, "early");
    assert!(
        text.starts_with("failed: it requires `hello_world`"),
        "{text}"
    );
    assert_eq!(implementing(&app, "on_user_created"), Vec::<String>::new());
}

/// README: a plugin "fails (with the reason) when one [requirement] is
/// missing, failed, ...". A requirement refused as it is found (here:
/// found twice in the folder) has failed: the plugin needing it must fail.
#[test]
fn a_requirement_refused_as_found_twice_fails_the_plugin_that_needs_it() {
    let dir = folder_with(&["early", "hello_world"]);
    std::fs::create_dir(dir.path().join("app_plugin_hello_world")).unwrap();
    std::fs::copy(
        workspace_plugins().join("app_plugin_hello_world/Cargo.toml"),
        dir.path().join("app_plugin_hello_world/Cargo.toml"),
    )
    .unwrap();
    let app = start(dir.path(), "", &[]);
    let text = status(&app, "early");
    assert!(
        text.starts_with("failed: it requires `hello_world`"),
        "{text}"
    );
    assert_eq!(implementing(&app, "on_user_created"), Vec::<String>::new());
}

/// README: a plugin "fails (with the reason) when one [requirement] is
/// missing, failed, ..."; a plugin failing in `on_plugins_loaded` is
/// removed with its routes. When the requirement fails there (here the
/// faulty fixture's code as `hello_world`, panicking at startup), the
/// plugin that needs it must not stay registered on a requirement that is
/// gone.
#[test]
fn a_requirement_failing_at_startup_fails_the_plugin_that_needs_it() {
    let dir = folder_with(&["early"]);
    copy_as(dir.path(), "faulty", "hello_world");
    let app = start(dir.path(), "", &[("FAULTY_MODE", "startup")]);
    let hello = status(&app, "hello_world");
    assert!(
        hello.starts_with("failed: on_plugins_loaded") && hello.contains("panicked"),
        "{hello}"
    );
    expect(200, app.get("/health", None));
    app.create_user("ada");
    let text = status(&app, "early");
    assert!(
        text.starts_with("failed: ") && text.contains("hello_world"),
        "{text}"
    );
    assert_eq!(implementing(&app, "on_user_created"), Vec::<String>::new());
}

/// README: a plugin "fails (with the reason) when one [requirement] is
/// missing, failed, ..."; a plugin's failed migration fails that plugin.
/// When the requirement fails its migration (here tally's code as
/// `hello_world`: its table is not `plugin_hello_world_*`), the plugin that
/// needs it must fail too.
#[test]
fn a_requirement_failing_its_migration_fails_the_plugin_that_needs_it() {
    let dir = folder_with(&["early"]);
    copy_as(dir.path(), "tally", "hello_world");
    let app = start(dir.path(), "", &[]);
    let hello = status(&app, "hello_world");
    assert!(
        hello.contains("migration 1 creates table `plugin_tally_entries`"),
        "{hello}"
    );
    expect(200, app.get("/health", None));
    app.create_user("ada");
    let text = status(&app, "early");
    assert!(
        text.starts_with("failed: ") && text.contains("hello_world"),
        "{text}"
    );
    assert_eq!(implementing(&app, "on_user_created"), Vec::<String>::new());
}

// ------------------------------------------------------------ disabled

/// README: `disabled = ["audit"]  # never opened`. A disabled plugin is
/// never opened, so nothing that opening would find matters: a garbage
/// file, a named pipe (which opening would block on), a name found twice,
/// a library writable by everyone: each is `disabled`, not failed, in the
/// listing, the summary and `plugins list`; a name disabled that is not
/// there changes nothing.
#[test]
fn a_disabled_plugin_is_never_opened_whatever_the_file() {
    let dir = folder_with(&["hello_world"]);
    let d = dir.path();
    copy_as(d, "hello_world", "twin");
    std::fs::write(d.join(library_file("garbage")), "not ELF").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(d.join(library_file("pipe")))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(d.join("app_plugin_twin.wasm"), b"\0asm").unwrap();
    let open = copy_as(d, "hello_world", "open");
    set_mode(&open, 0o777);
    let config = "[plugins]\ndisabled = [\"garbage\", \"pipe\", \"twin\", \"open\", \"ghost\"]\n";
    let app = start(d, config, &[]);
    let (code, listed) = list(d, config, &[]);
    assert!(code.success(), "{listed}");
    for name in ["garbage", "pipe", "twin", "open"] {
        let found = entries(&app, name);
        assert!(!found.is_empty(), "{name}");
        for entry in &found {
            assert_eq!(entry["status"], "disabled", "{entry}");
            assert_eq!(entry["hooks"], json!([]), "{entry}");
        }
        assert_eq!(
            list_lines(&listed, name),
            found.iter().map(list_line_of).collect::<Vec<_>>()
        );
    }
    assert!(entries(&app, "ghost").is_empty());
    let summary = "plugins: 1 loaded, 5 disabled, 0 failed";
    assert!(app.proc.output.text().contains(summary));
    assert!(listed.contains(summary), "{listed}");
    healthy(&app, "ada");
}

// ------------------------------------------------------------ migrations

/// The folder of the migration tests: hello_world, and tally at `stage`
/// (`broken`: its migration 2 fails in the database).
fn tally_folder(stage: u8, broken: bool) -> tempfile::TempDir {
    let dir = folder_with(&["hello_world"]);
    tally_as(dir.path(), "tally", stage, broken);
    dir
}

/// The history of tally's migrations, `version:name`.
fn history(db: &TestDb) -> Vec<String> {
    db.column("SELECT version || ':' || name FROM plugin_tally_migrations ORDER BY version")
}

e2e! {
    /// README: "the app applies those not applied yet at startup, in one
    /// transaction, with the plugin's own history (`plugin_<name>_migrations`)";
    /// "a plugin's migrations ... run, and can fail, only when the server
    /// starts (its report and `GET /api/admin/plugins` say so)". Migration 1
    /// runs, migration 2 fails in the database: nothing of either is left (no
    /// table, no history), the plugin is failed with its hooks gone (users
    /// are created, nothing counted), the log has the database's message,
    /// other plugins serve, and `plugins list`, which opens no database,
    /// says loaded.
    fn a_migration_failing_halfway_leaves_nothing_and_fails_only_its_plugin(backend) {
        let dir = tally_folder(2, true);
        let app = TestApp::start_with(backend, options(dir.path(), "", &[]));
        assert_eq!(
            status(&app, "tally"),
            "failed: migration 2 (notes) failed (the app's log has the database's message)"
        );
        assert_eq!(entries(&app, "tally")[0]["hooks"], json!([]));
        assert_eq!(tables(&app.db, backend, "plugin_tally"), Vec::<String>::new());
        let log = app.proc.output.text();
        let line = log
            .lines()
            .find(|l| l.contains("plugin tally: migration 2 (notes) failed:"))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("ERROR") && line.contains("usernamz"), "{line}");
        assert!(log.contains("plugins: 1 loaded, 0 disabled, 1 failed"), "{log}");
        healthy(&app, "ada");
        assert_eq!(implementing(&app, "on_user_created"), ["hello_world"]);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users WHERE username = 'ada'"), 1);
        let (code, listed) = list(dir.path(), "", &[]);
        assert!(code.success(), "{listed}");
        let line = list_lines(&listed, "tally").join("\n");
        assert!(line.starts_with(&format!("{:<24} loaded ", "tally")), "{listed}");
    }

    /// README: `required = ["greeter"]  # the app refuses to start without
    /// them`; migrations "in one transaction". A required plugin whose
    /// migration fails halfway stops startup naming it and the migration,
    /// never listens, and leaves none of its tables.
    fn a_required_plugin_whose_migration_fails_stops_startup_leaving_no_table(backend) {
        let dir = tally_folder(2, true);
        let db = TestDb::create(backend);
        let required = options(dir.path(), "[plugins]\nrequired = [\"tally\"]\n", &[]);
        let (code, output) = run_to_exit(&db, &required);
        assert!(!code.success(), "{output}");
        assert!(
            output.contains("required plugin `tally` failed: migration 2 (notes) failed"),
            "{output}"
        );
        assert!(!output.contains("listening on"), "{output}");
        assert_eq!(tables(&db, backend, "plugin_tally"), Vec::<String>::new());
    }

    /// README: the app "applies those not applied yet at startup, in one
    /// transaction, with the plugin's own history". Over three starts on one
    /// database: stage 1 applies migration 1 (history `1:entries`, a row
    /// counted); a new version whose migration 2 fails keeps migration 1 and
    /// its rows exactly (no column, no second history row) and fails only
    /// that plugin; the fixed version then applies migration 2 alone, on the
    /// rows already there.
    fn a_later_migration_failing_keeps_what_was_applied_before(backend) {
        let db = Arc::new(TestDb::create(backend));
        let dir = tally_folder(1, false);
        let opts = options(dir.path(), "", &[]);
        let app = TestApp::start_on(db.clone(), &opts);
        assert_eq!(status(&app, "tally"), "loaded");
        app.create_user("ada");
        assert_eq!(history(&db), ["1:entries"]);
        assert_eq!(db.column("SELECT username FROM plugin_tally_entries"), ["ada"]);
        stop(app);

        tally_as(dir.path(), "tally", 2, true);
        let app = TestApp::start_on(db.clone(), &opts);
        let text = status(&app, "tally");
        assert!(text.starts_with("failed: migration 2 (notes) failed"), "{text}");
        assert_eq!(history(&db), ["1:entries"]);
        assert!(!has_column(&db, backend, "plugin_tally_entries", "note"));
        assert_eq!(
            tables(&db, backend, "plugin_tally"),
            ["plugin_tally_entries", "plugin_tally_migrations"]
        );
        healthy(&app, "bob");
        assert_eq!(db.column("SELECT username FROM plugin_tally_entries"), ["ada"]);
        stop(app);

        tally_as(dir.path(), "tally", 2, false);
        let app = TestApp::start_on(db.clone(), &opts);
        assert_eq!(status(&app, "tally"), "loaded");
        assert!(app.proc.output.text().contains("plugin tally: 1 migration(s) applied"));
        assert_eq!(history(&db), ["1:entries", "2:notes"]);
        assert_eq!(
            db.column("SELECT username || ':' || note FROM plugin_tally_entries"),
            ["ada:none"]
        );
        app.create_user("cy");
        assert_eq!(
            db.column("SELECT username FROM plugin_tally_entries ORDER BY id"),
            ["ada", "cy"]
        );
    }
}

// ------------------------------------------------------------ the folder itself

/// README: "A configured plugin folder that does not exist is a warning";
/// "or a link leading outside the plugin folder". A configured folder that
/// is a file is no missing folder: startup stops, naming it, never a panic.
/// A folder reached through a link is judged as the folder it leads to: a
/// link inside it to one of its libraries loads, one leading out of it is
/// refused.
#[test]
fn the_plugin_folder_as_a_file_stops_startup_and_through_a_link_is_the_real_folder() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plugins.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let db = TestDb::create(Backend::Sqlite);
    let (code, output) = run_to_exit(&db, &options(&file, "", &[]));
    assert_eq!(code.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!("reading the plugin folder {}", file.display())),
        "{output}"
    );
    assert!(
        !output.contains("panicked") && !output.contains("listening on"),
        "{output}"
    );

    let real = root.path().join("real");
    std::fs::create_dir(&real).unwrap();
    copy_as(&real, "hello_world", "hello_world");
    std::os::unix::fs::symlink(
        library_file("hello_world"),
        real.join(library_file("inlink")),
    )
    .unwrap();
    copy_as(root.path(), "hello_world", "elsewhere");
    std::os::unix::fs::symlink(
        root.path().join(library_file("elsewhere")),
        real.join(library_file("out")),
    )
    .unwrap();
    let via = root.path().join("via");
    std::os::unix::fs::symlink(&real, &via).unwrap();
    let app = start(&via, "", &[]);
    assert_eq!(status(&app, "inlink"), "loaded");
    let out = status(&app, "out");
    assert!(
        out.starts_with("failed: ") && out.contains("is a link leading outside the plugin folder"),
        "{out}"
    );
    expect(200, app.get("/plugins/inlink/user", ADMIN));
    healthy(&app, "ada");
}

// ------------------------------------------------------------ package

/// README, "Package it": `app package dist` "fills `dist/` with ... every
/// plugin, prebuilt, in `dist/plugins/`"; "The app refuses a library that
/// is ... owned by another user, or a link leading outside the plugin
/// folder." The package must not turn a library the app refuses into one
/// it loads: a link leading out of the folder (and, where the test can
/// give a file away, another user's library) is left out of the package,
/// said on stderr with the reason (README: "A plugin the app would refuse
/// ... is left out"); hello_world, beside them, is packaged and loads
/// there. Left out, a `required` plugin fails the command.
#[test]
fn a_package_never_launders_a_library_the_app_refuses() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("plugins");
    std::fs::create_dir(&d).unwrap();
    copy_as(&d, "hello_world", "hello_world");
    copy_as(root.path(), "hello_world", "outside");
    std::os::unix::fs::symlink(
        root.path().join(library_file("outside")),
        d.join(library_file("relout")),
    )
    .unwrap();
    let mut refused = vec!["relout"];
    let theirs = copy_as(&d, "hello_world", "theirs");
    let given = std::process::Command::new("chown")
        .arg("65534")
        .arg(&theirs)
        .status();
    if given.is_ok_and(|s| s.success()) {
        refused.push("theirs");
    } else {
        std::fs::remove_file(&theirs).unwrap();
    }
    let (code, listed) = list(&d, "", &[]);
    assert!(code.success(), "{listed}");
    for name in &refused {
        let line = list_lines(&listed, name).join("\n");
        assert!(line.contains(" failed: "), "{listed}");
    }
    let db = TestDb::create(Backend::Sqlite);
    let dist = root.path().join("dist");
    let package = options(&d, "", &[]).args(&["package", dist.to_str().unwrap()]);
    let (code, output) = run_to_exit(&db, &package);
    assert!(code.success(), "{output}");
    assert!(
        dist.join("plugins")
            .join(library_file("hello_world"))
            .is_file()
    );
    for name in &refused {
        let said = format!(
            "left out: plugin {name} ({}): ",
            d.join(library_file(name)).display()
        );
        assert!(output.contains(&said), "{said}: {output}");
        assert!(!dist.join("plugins").join(library_file(name)).exists());
    }
    let run = std::process::Command::new(dist.join("app"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .args(["plugins", "list"])
        .current_dir(root.path())
        .output()
        .unwrap();
    let packaged = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{packaged}");
    let hello = list_lines(&packaged, "hello_world").join("\n");
    assert!(hello.contains(" loaded "), "{packaged}");
    for name in &refused {
        assert!(list_lines(&packaged, name).is_empty(), "{packaged}");
    }

    let required = options(&d, "[plugins]\nrequired = [\"relout\"]\n", &[]);
    let again = root.path().join("again");
    let (code, output) = run_to_exit(&db, &required.args(&["package", again.to_str().unwrap()]));
    assert!(!code.success(), "{output}");
    assert!(
        output.contains(&format!(
            "required plugin `relout` ({}) cannot be packaged: {} is a link leading outside \
             the plugin folder",
            d.join(library_file("relout")).display(),
            d.join(library_file("relout")).display()
        )),
        "{output}"
    );
}

/// README, "Package it": packaging again into the same folder ships what
/// the plugin folder holds now: a plugin disabled since is removed from
/// the package (said on stderr), or the packaged app would still load it.
/// A misnamed file there is left alone. A folder whose files would be
/// copied onto themselves (the plugin folder being packaged, the running
/// app's own, a `plugins/` that links to the plugin folder) is refused,
/// and nothing in it is touched or made.
#[test]
fn a_package_made_again_ships_only_what_is_there_now_and_never_overwrites_its_source() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("plugins");
    std::fs::create_dir(&d).unwrap();
    let hello = copy_as(&d, "hello_world", "hello_world");
    copy_as(&d, "hello_world", "second");
    let db = TestDb::create(Backend::Sqlite);
    let dist = root.path().join("dist");
    let package = |config: &str| {
        let args = ["package", dist.to_str().unwrap()];
        run_to_exit(&db, &options(&d, config, &[]).args(&args))
    };
    let (code, output) = package("");
    assert!(code.success(), "{output}");
    let shipped = |name: &str| dist.join("plugins").join(library_file(name));
    assert!(shipped("hello_world").is_file() && shipped("second").is_file());

    // Misnamed, it is no plugin the packaged app loads: left alone.
    let misnamed = dist.join("plugins").join("libnotes.so");
    std::fs::write(&misnamed, b"not ours").unwrap();
    let (code, output) = package("[plugins]\ndisabled = [\"second\"]\n");
    assert!(code.success(), "{output}");
    assert!(
        output.contains(&format!(
            "removed {}: not part of this package",
            shipped("second").display()
        )),
        "{output}"
    );
    assert!(!shipped("second").exists());
    assert!(shipped("hello_world").is_file());
    assert_eq!(std::fs::read(&misnamed).unwrap(), b"not ours");
    assert_eq!(
        output.matches("not part of this package").count(),
        1,
        "{output}"
    );

    let size = std::fs::metadata(&hello).unwrap().len();
    let binary = app_binary();
    let linked = root.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&d, linked.join("plugins")).unwrap();
    let onto_itself = [root.path(), binary.parent().unwrap(), &linked];
    for out in onto_itself.map(|p| p.to_str().unwrap()) {
        let (code, output) = run_to_exit(&db, &options(&d, "", &[]).args(&["package", out]));
        assert!(!code.success(), "{output}");
        assert!(
            output.contains(&format!("cannot package into {out}: ")),
            "{output}"
        );
    }
    assert_eq!(std::fs::metadata(&hello).unwrap().len(), size);
    // Refused before anything is made: a `plugins/` beside the binary
    // would become its plugin folder.
    assert!(!binary.with_file_name("plugins").exists());
}
