//! End-to-end tests of the app: the harness that starts the real binary
//! (`test-app`, the app with the test plugins of [`plugins`] linked in) on a
//! free port against a fresh SQLite file or PostgreSQL database, talks HTTP
//! to it and reads its database directly.

pub mod after_commit;
pub mod plugins;
pub mod receiver;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;
use tempfile::TempDir;

pub use plugins::USER_TOKEN;
pub use serde_json::json;

/// The admin token every test app is started with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";
/// Shorthand for "as the admin" in request helpers.
pub const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
/// Shorthand for "as user 1 (non-admin, via the `tokens` plugin)".
pub const USER: Option<&str> = Some(USER_TOKEN);
/// How long to wait for anything the app should do promptly.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Writes each test once, runs it on SQLite and on PostgreSQL:
/// `e2e! { fn users_crud(backend) { let app = TestApp::start(backend); ... } }`
/// gives `users_crud::sqlite` and `users_crud::postgres`. Attributes before
/// `fn` apply to both. Without `TEST_DATABASE_URL` (when the tests were
/// built) the PostgreSQL variant is ignored, and cargo says so and why.
#[macro_export]
macro_rules! e2e {
    ($($(#[$attr:meta])* fn $name:ident($backend:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($backend: $crate::Backend) $body

            #[test]
            $(#[$attr])*
            fn sqlite() {
                run($crate::Backend::Sqlite)
            }

            #[test]
            #[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]
            $(#[$attr])*
            fn postgres() {
                run($crate::Backend::postgres().expect("TEST_DATABASE_URL"))
            }
        }
    )*};
}

/// `target/<profile>` of this test run.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps")
        .to_path_buf()
}

/// Builds, once per test process, what the tests run and `cargo test` does
/// not build (or builds only when it builds every target): the app binary,
/// every plugin library of `plugins/`, and the `test-app` example. With one
/// SDK dylib shared by all of them, a binary left from an earlier build
/// would not even start. Build and test resolve the same features (no
/// dev-dependency touches the SDK's crates), so this only links what is
/// missing: it never rebuilds the SDK under the tests.
fn built() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let status = cargo()
            .args([
                "build",
                "--quiet",
                "--lib",
                "--bins",
                "--examples",
                "--profile",
                &profile,
            ])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build of the workspace failed");
        dir
    })
}

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `cargo`, run in the workspace, without the variables cargo sets for the
/// test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, `OUT_DIR`, ...):
/// build scripts that watch them (ring's does) would otherwise rerun, and
/// the next plain `cargo build` would rebuild them again.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_MANIFEST_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || [
                "OUT_DIR",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&&*key);
        if set_for_tests {
            cmd.env_remove(&*key);
        }
    }
    cmd.current_dir(workspace());
    cmd
}

/// The `test-app` example: the app with the test plugins linked in.
pub fn binary() -> PathBuf {
    built().join("examples").join("test-app")
}

/// The real `app` binary, with every plugin crate of `plugins/` built
/// beside it.
pub fn app_binary() -> PathBuf {
    built().join("app")
}

/// The workspace's `plugins/` folder, with whatever a user added to it.
pub fn workspace_plugins() -> PathBuf {
    workspace().join("plugins")
}

/// The plugins this repository ships in `plugins/`: what the tests mean to
/// run, whatever else a user put beside them.
pub const SHIPPED: [&str; 7] = [
    "api_keys",
    "audit_log",
    "autoinvite",
    "child_removal",
    "hello_world",
    "parent_access",
    "webhooks",
];

/// A plugin folder holding the [`SHIPPED`] plugin crates and nothing else,
/// for `APP_PLUGINS_DIR`: their manifests, since the app takes a crate
/// folder's library from beside its binary, where `cargo build` put it.
pub fn shipped_plugins() -> PathBuf {
    static FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOLDER
        .get_or_init(|| {
            let folder = built().join("shipped-plugins");
            for name in SHIPPED {
                let crate_dir = format!("app_plugin_{name}");
                let to = folder.join(&crate_dir);
                std::fs::create_dir_all(&to).expect("creating the shipped plugin folder");
                std::fs::copy(
                    workspace_plugins().join(&crate_dir).join("Cargo.toml"),
                    to.join("Cargo.toml"),
                )
                .expect("copying a shipped plugin's manifest");
            }
            folder
        })
        .clone()
}

/// Sets `path`'s permission bits to `mode`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The file name of plugin `name`'s library.
pub fn library_file(name: &str) -> String {
    let (prefix, suffix) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    format!("{prefix}app_plugin_{name}{suffix}")
}

/// Copies plugin `name`'s built library into `folder` (the app takes a
/// plugin crate's library only from beside its own binary, so a folder of
/// plugins for `test-app` gets prebuilt ones), owner-writable only.
pub fn put_library(folder: &Path, name: &str) -> PathBuf {
    let file = library_file(name);
    let copy = folder.join(&file);
    std::fs::copy(app_binary().with_file_name(&file), &copy)
        .unwrap_or_else(|e| panic!("copying {file}: {e}"));
    set_mode(&copy, 0o755);
    copy
}

/// A fresh folder holding the built libraries of `plugins`.
pub fn folder_with(plugins: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in plugins {
        put_library(dir.path(), name);
    }
    dir
}

/// `plugins/` in `db`'s folder, holding the webhooks library.
pub fn webhooks_folder(db: &TestDb) -> PathBuf {
    let dir = db.dir.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("a plugin folder");
    put_library(&dir, "webhooks");
    dir
}

/// Plugin `name`'s entry in the admin report.
pub fn plugin_entry(app: &TestApp, name: &str) -> Value {
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let plugins = report["plugins"].as_array().cloned().unwrap_or_default();
    let entry = plugins.into_iter().find(|p| p["name"] == name);
    entry.unwrap_or_else(|| panic!("no plugin {name} in {report}"))
}

/// Plugin `name`'s status in the admin report (`loaded`, `failed: ...`).
pub fn plugin_status(app: &TestApp, name: &str) -> String {
    let entry = plugin_entry(app, name);
    entry["status"].as_str().unwrap_or_default().to_owned()
}

/// `plugin`'s deliveries, as `status:attempts`, oldest first.
pub fn deliveries(db: &TestDb, plugin: &str) -> Vec<String> {
    db.column(&format!(
        "SELECT status || ':' || attempts FROM outbox_deliveries WHERE plugin = '{plugin}' ORDER BY id"
    ))
}

/// How many of `plugin`'s deliveries are done.
pub fn delivered(db: &TestDb, plugin: &str) -> i64 {
    db.count(&format!(
        "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = '{plugin}' AND status = 'delivered'"
    ))
}

/// The events' keys in the log's order (commit order).
pub fn delivery_order(db: &TestDb) -> Vec<String> {
    db.column("SELECT event_key FROM outbox_events ORDER BY txid, id")
}

/// The instance id an app logged when its delivery workers started.
pub fn instance_of(app: &TestApp) -> String {
    let output = app.proc.output.text();
    let at = output.find("instance=").expect("the workers' start line") + "instance=".len();
    output[at..]
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap()
        .to_owned()
}

/// The component at `path`, with a custom section of its own appended
/// (named `tag`, holding this process's id and the time): a component
/// whose compiled code no other test's shares in the cache.
pub fn unique_component(path: &Path, tag: u8) -> Vec<u8> {
    let mut component = std::fs::read(path).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let payload = format!("{} {}", std::process::id(), stamp.as_nanos());
    let size = u8::try_from(2 + payload.len()).unwrap();
    assert!(size < 0x80, "one LEB128 byte");
    component.extend([0, size, 1, tag]);
    component.extend(payload.as_bytes());
    component
}

/// The app's cache of compiled components (beside the binaries).
pub fn component_cache() -> PathBuf {
    app_binary().with_file_name("component-cache")
}

/// A component's hash as the cache names its entries: SHA-256, in hex.
pub fn component_hash(component: &[u8]) -> String {
    use hookspecs::sha2::{Digest, Sha256};
    Sha256::digest(component)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entries of the compiled-code cache for `component`'s bytes.
pub fn cache_entries(component: &[u8]) -> Vec<PathBuf> {
    let hash = component_hash(component);
    let Ok(dir) = std::fs::read_dir(component_cache()) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&hash))
        .collect()
}

/// A connection to the PostgreSQL database at `url` holding a transaction
/// open, with its id (as a writing transaction has one): what a busy
/// instance's or a forgotten session's transaction is to the outbox.
pub async fn open_transaction(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connecting");
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .expect("BEGIN");
    sqlx::query("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut conn)
        .await
        .expect("an id");
    conn
}

/// Copies the workspace's sources (not target/, not .git, nothing a run
/// leaves) into `to`.
pub fn copy_sources(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("reading the sources") {
        let entry = entry.expect("reading the sources");
        let name = entry.file_name();
        if [".git", "target", ".venv", "results", "data", "dist"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            std::fs::create_dir(to.join(&name)).expect("creating a folder");
            copy_sources(&path, &to.join(&name));
        } else if kind.is_file() {
            std::fs::copy(&path, to.join(&name)).expect("copying a file");
        }
    }
}

/// Builds the component crate in `dir` (package `app_plugin_<name>`) for
/// wasm32-wasip2 into `target/components`, with the app's profile for
/// components: the component's path.
pub fn build_component(dir: &Path, name: &str) -> PathBuf {
    let target = workspace().join("target").join("components");
    let status = cargo()
        .args(["build", "--quiet", "--target", "wasm32-wasip2"])
        .args(app::plugins::component_profile_args())
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("running cargo build for wasm32-wasip2");
    assert!(status.success(), "building the component {name} failed");
    target.join(format!(
        "wasm32-wasip2/{}/app_plugin_{name}.wasm",
        app::plugins::COMPONENT_PROFILE
    ))
}

/// Builds the workspace's plugin crate `app_plugin_<name>` (shipped or a
/// test fixture) as a component, as the app builds one, once per test
/// process: the `.wasm` file's path. The crate's library is
/// a `dylib` (what the native loader takes); `cargo rustc --crate-type
/// cdylib` makes the same source a component (cargo refuses `dylib` and
/// `cdylib` together in one manifest).
pub fn workspace_component(name: &'static str) -> PathBuf {
    static BUILT: std::sync::OnceLock<std::sync::Mutex<Vec<&'static str>>> =
        std::sync::OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = workspace().join(format!(
        "target/wasm32-wasip2/{}/app_plugin_{name}.wasm",
        app::plugins::COMPONENT_PROFILE
    ));
    if !built.contains(&name) {
        let status = cargo()
            .args(["rustc", "--quiet", "--target", "wasm32-wasip2"])
            .args(app::plugins::component_profile_args())
            .args(["--crate-type", "cdylib", "-p"])
            .arg(format!("app_plugin_{name}"))
            .status()
            .expect("running cargo rustc for wasm32-wasip2");
        assert!(status.success(), "building {name} as a component failed");
        built.push(name);
    }
    path
}

/// Which database the app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the data directory.
    Sqlite,
    /// A fresh database on the server at `TEST_DATABASE_URL`.
    Postgres,
}

impl Backend {
    /// PostgreSQL if `TEST_DATABASE_URL` is set, else `None`. A test that
    /// needs it is marked
    /// `#[cfg_attr(no_test_database, ignore = "PostgreSQL: TEST_DATABASE_URL is not set")]`
    /// (as [`e2e!`] does), so that cargo reports it ignored rather than passed.
    pub fn postgres() -> Option<Backend> {
        std::env::var_os("TEST_DATABASE_URL").map(|_| Backend::Postgres)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for database checks")
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out = format!("{out}?{query}");
    }
    out
}

/// A test's database and data directory; the PostgreSQL database is created
/// fresh and dropped with this value.
pub struct TestDb {
    /// The data directory (the SQLite file lives here).
    pub dir: TempDir,
    /// `DATABASE_URL` for the app (`None`: the app's SQLite default).
    pub app_url: Option<String>,
    /// Where the tests read the database.
    pub url: String,
    /// PostgreSQL: the server URL and the database to drop.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database for `backend`.
    pub fn create(backend: Backend) -> TestDb {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("a temp data dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("app.db").display());
                TestDb {
                    dir,
                    app_url: None,
                    url,
                    postgres: None,
                }
            }
            Backend::Postgres => {
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let server = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!(
                    "e2e_{}_{}_{nanos}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                admin_sql(&server, &format!("CREATE DATABASE {name}"));
                let url = with_database(&server, &name);
                TestDb {
                    dir,
                    app_url: Some(url.clone()),
                    url,
                    postgres: Some((server, name)),
                }
            }
        }
    }

    /// Runs `sql` and returns every row's first column as text (integers
    /// and NULL included: `"42"`, `"NULL"`).
    pub fn column(&self, sql: &str) -> Vec<String> {
        runtime().block_on(query_column(&self.url, sql))
    }

    /// A `SELECT COUNT(*) ...` (or any single integer).
    pub fn count(&self, sql: &str) -> i64 {
        let column = self.column(sql);
        assert_eq!(column.len(), 1, "{sql} gave {column:?}");
        column[0].parse().expect("an integer")
    }
}

/// Runs `sql` on the database at `url` and returns every row's first column
/// as text (integers and NULL included: `"42"`, `"NULL"`).
///
/// # Panics
/// If the database cannot be reached or the query fails.
pub async fn query_column(url: &str, sql: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let rows = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    rows.iter()
        .map(|row| {
            if let Ok(n) = row.try_get::<Option<i64>, _>(0) {
                n.map_or("NULL".into(), |n| n.to_string())
            } else {
                row.try_get::<Option<String>, _>(0)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .unwrap_or_else(|| "NULL".into())
            }
        })
        .collect()
}

fn admin_sql(server: &str, sql: &str) {
    runtime().block_on(async {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await
            .unwrap_or_else(|e| panic!("connecting to TEST_DATABASE_URL: {e}"));
        sqlx::raw_sql(sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    });
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            admin_sql(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// How to start the app.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A config file (TOML) to pass as `APP_CONFIG`.
    pub config: Option<String>,
    /// CLI arguments (default: none, i.e. `serve`).
    pub args: Vec<String>,
    /// Run the real `app` binary (plugins from folders only) instead of
    /// the `test-app` example with the test plugins linked in.
    pub real_app: bool,
}

impl Options {
    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Uses `toml` as the config file.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// Runs the real `app` binary.
    pub fn real_app(mut self) -> Self {
        self.real_app = true;
        self
    }

    /// Passes CLI arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// The binary with these options, against `db`.
    pub fn command(&self, db: &TestDb) -> Command {
        let mut cmd = Command::new(if self.real_app {
            app_binary()
        } else {
            binary()
        });
        for var in [
            "DATABASE_URL",
            "APP_CONFIG",
            "APP_PLUGINS_DIR",
            "APP_LISTEN",
            "APP_DATA_DIR",
            plugins::ROUTE_CLASH_ENV,
            after_commit::AFTER_COMMIT_ENV,
        ] {
            cmd.env_remove(var);
        }
        cmd.args(&self.args)
            .current_dir(db.dir.path())
            .env("APP_LISTEN", "127.0.0.1:0")
            .env("APP_DATA_DIR", db.dir.path())
            .env("APP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        if let Some(url) = &db.app_url {
            cmd.env("DATABASE_URL", url);
        }
        if let Some(config) = &self.config {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = db.dir.path().join(format!("config-{n}.toml"));
            std::fs::write(&path, config).expect("writing the config file");
            cmd.env("APP_CONFIG", path);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// What a process printed so far (stdout and stderr, interleaved by line).
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    /// Everything so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until the output satisfies `done`.
    pub fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !done(&self.text()) {
            assert!(
                start.elapsed() < DEADLINE,
                "waited {DEADLINE:?} for {what}; output so far:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Copies `from` line by line into this output (and into `lines`),
    /// until it closes.
    fn pump(
        &self,
        from: impl Read + Send + 'static,
        lines: Option<mpsc::Sender<String>>,
    ) -> std::thread::JoinHandle<()> {
        let out = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                {
                    let mut text = out.0.lock().unwrap_or_else(|e| e.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                }
                if let Some(lines) = &lines {
                    let _ = lines.send(line);
                }
            }
        })
    }
}

/// A spawned process whose output is collected.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its output so far.
    pub output: Output,
    stdout_lines: Receiver<String>,
    /// The threads copying stdout and stderr: done once both pipes closed.
    pumps: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd`, collecting stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning test-app");
        let output = Output::default();
        let (tx, stdout_lines) = mpsc::channel();
        let pumps = vec![
            output.pump(child.stdout.take().expect("stdout"), Some(tx)),
            output.pump(child.stderr.take().expect("stderr"), None),
        ];
        Proc {
            child,
            output,
            stdout_lines,
            pumps,
        }
    }

    /// Reads stdout until `listening on http://ADDR`; fails (with the output
    /// so far) after [`DEADLINE`] or if the process ends first.
    pub fn wait_listening(&self) -> String {
        self.wait_listening_within(DEADLINE)
    }

    /// [`wait_listening`](Self::wait_listening), waiting up to `deadline`
    /// (a start that builds first).
    pub fn wait_listening_within(&self, deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find("listening on http://") {
                        let addr = line[at + "listening on http://".len()..].trim();
                        return format!("http://{}", addr.split_whitespace().next().unwrap_or(""));
                    }
                }
                Err(error) => panic!(
                    "the app did not say `listening on` ({error:?}); output so far:\n{}",
                    self.output.text()
                ),
            }
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(DEADLINE)
    }

    /// Waits up to `deadline` for the process to exit.
    pub fn wait_exit_within(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "the process did not exit within {deadline:?}; output so far:\n{}",
                self.output.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit, then for both output pumps to have copied
    /// everything (they end when the pipes close), bounded by [`DEADLINE`].
    pub fn finish(self) -> (ExitStatus, String) {
        self.finish_within(DEADLINE)
    }

    /// [`finish`](Self::finish), waiting up to `deadline` for the exit (a
    /// command that builds first).
    pub fn finish_within(mut self, deadline: Duration) -> (ExitStatus, String) {
        let status = self.wait_exit_within(deadline);
        let start = Instant::now();
        while !self.pumps.iter().all(std::thread::JoinHandle::is_finished) {
            assert!(
                start.elapsed() < DEADLINE,
                "the process's output did not close within {DEADLINE:?}:\n{}",
                self.output.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        (status, self.output.text())
    }

    /// Sends a signal: `"TERM"`, `"INT"`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `test-app` with `options` against `db` to completion (bounded):
/// its exit status and output.
pub fn run_to_exit(db: &TestDb, options: &Options) -> (ExitStatus, String) {
    Proc::spawn(options.command(db)).finish()
}

/// A running app, killed on drop.
pub struct TestApp {
    /// The process (drops before the database).
    pub proc: Proc,
    /// Talks to it (also through `Deref`).
    pub client: Client,
    /// Its database and data directory.
    pub db: Arc<TestDb>,
}

impl std::ops::Deref for TestApp {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// An HTTP client for one app, cheap to clone into other threads.
#[derive(Clone)]
pub struct Client {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    agent: ureq::Agent,
}

/// Method, path, token and body of a request: see [`Client::request`].
pub type Response = (u16, Value);

/// A response whole: status, headers (names lower-cased), text and its JSON
/// (`Null` if empty).
#[derive(Debug)]
pub struct Whole {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl Whole {
    /// The first header named `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A raw HTTP/1.1 response as [`read_to_close`] returns it (a body
    /// sent whole, not chunked).
    #[track_caller]
    pub fn parse(raw: &str) -> Whole {
        let (head, text) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {raw:?}"));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Whole {
            status,
            headers,
            text: text.to_owned(),
            body: json_or_null(text, || raw.to_owned()),
        }
    }
}

/// `text` as JSON, `Null` if empty; panics naming `what` if not JSON.
#[track_caller]
fn json_or_null(text: &str, what: impl Fn() -> String) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text:?}", what()))
    }
}

/// A raw connection to `app`, reads bounded by [`DEADLINE`].
pub fn connect(app: &Client) -> std::net::TcpStream {
    let stream =
        std::net::TcpStream::connect(app.base.trim_start_matches("http://")).expect("connecting");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Reads until the server closes the connection (or [`DEADLINE`] passes):
/// everything it sent.
pub fn read_to_close(stream: &mut std::net::TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

impl TestApp {
    /// Starts the app on a fresh database for `backend`.
    pub fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, Options::default())
    }

    /// Starts the app on a fresh database with `options`.
    pub fn start_with(backend: Backend, options: Options) -> TestApp {
        Self::start_on(Arc::new(TestDb::create(backend)), &options)
    }

    /// Starts the app on a fresh database with `options`, giving it up to
    /// `deadline` to listen: for a start that builds a component crate
    /// first (cargo may compile its dependencies from nothing).
    pub fn start_within(backend: Backend, options: Options, deadline: Duration) -> TestApp {
        let db = Arc::new(TestDb::create(backend));
        let proc = Proc::spawn(options.command(&db));
        let client = Client::new(proc.wait_listening_within(deadline));
        TestApp { proc, client, db }
    }

    /// Starts the app on `db` (shared with other instances, maybe).
    pub fn start_on(db: Arc<TestDb>, options: &Options) -> TestApp {
        Self::wait_up(Proc::spawn(options.command(&db)), db)
    }

    /// Waits until `proc` listens.
    pub fn wait_up(proc: Proc, db: Arc<TestDb>) -> TestApp {
        let client = Client::new(proc.wait_listening());
        TestApp { proc, client, db }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.db.dir.path()
    }

    /// A path in the data directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

impl Client {
    /// A client of the app at `base` (`http://127.0.0.1:PORT`), giving each
    /// request 30 s to answer.
    pub fn new(base: String) -> Client {
        Client::waiting(base, Duration::from_secs(30))
    }

    /// A client of the app at `base` giving each request up to `limit` to
    /// answer: for a request that compiles (a component crate's reload).
    pub fn waiting(base: String, limit: Duration) -> Client {
        let agent = ureq::AgentBuilder::new().timeout(limit).build();
        Client { base, agent }
    }

    /// Any request: `body` is sent as is (`None`: no body). Answers the
    /// status and the JSON body (`Null` if empty).
    #[track_caller]
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response {
        self.try_raw(method, path, token, body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// [`raw`](Self::raw), or the transport's error (the server is gone,
    /// the connection broke) instead of a panic.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Response, String> {
        let reply = self.try_whole(method, path, token, body)?;
        Ok((reply.status, reply.body))
    }

    /// [`try_raw`](Self::try_raw), keeping the headers and the text.
    pub fn try_whole(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Whole, String> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let outcome = match body {
            Some(body) => req
                .set("Content-Type", "application/json")
                .send_string(body),
            None => req.call(),
        };
        let response = match outcome {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(error.to_string()),
        };
        let status = response.status();
        // `headers_names` lists a repeated header once per value.
        let mut names = response.headers_names();
        names.sort();
        names.dedup();
        let headers = names
            .iter()
            .flat_map(|name| {
                let values = response.all(name);
                values
                    .into_iter()
                    .map(|v| (name.to_ascii_lowercase(), v.to_owned()))
            })
            .collect();
        let text = response.into_string().map_err(|e| e.to_string())?;
        let body = json_or_null(&text, || format!("{method} {path}"));
        Ok(Whole {
            status,
            headers,
            text,
            body,
        })
    }

    /// A request with an optional JSON body; `None` if the transport failed.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<Response> {
        self.try_raw(method, path, token, body.map(Value::to_string).as_deref())
            .ok()
    }

    /// A request with an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        self.raw(method, path, token, body.map(Value::to_string).as_deref())
    }

    /// GET.
    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request("GET", path, token, None)
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request("POST", path, token, Some(&body))
    }

    /// PUT with a JSON body.
    pub fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request("PUT", path, token, Some(&body))
    }

    /// PATCH with a JSON body.
    pub fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request("PATCH", path, token, Some(&body))
    }

    /// DELETE.
    pub fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request("DELETE", path, token, None)
    }

    /// Creates user `name` (email `name@example.org`) as the admin; 201.
    pub fn create_user(&self, name: &str) -> Value {
        let body = json!({"username": name, "email": format!("{name}@example.org")});
        expect(201, self.post("/api/users", ADMIN, body))
    }

    /// Creates an open space as the admin; 201.
    pub fn create_space(&self, name: &str, parent: Option<i64>) -> Value {
        let body = json!({"name": name, "parent_id": parent, "access": "open"});
        expect(201, self.post("/api/spaces", ADMIN, body))
    }

    /// The recorder's rows (through its route), in order.
    pub fn events(&self) -> Vec<Value> {
        match expect(200, self.get("/plugins/recorder/events", None)) {
            Value::Array(rows) => rows,
            other => panic!("events: {other}"),
        }
    }

    /// `(plugin, hook, entity_id)` of the recorder's rows from index `from`.
    pub fn event_keys(&self, from: usize) -> Vec<(String, String, i64)> {
        self.events()
            .iter()
            .skip(from)
            .map(|e| {
                (
                    e["plugin"].as_str().unwrap_or_default().to_owned(),
                    e["hook"].as_str().unwrap_or_default().to_owned(),
                    e["entity_id"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    /// [`event_keys`](Self::event_keys) of the `recorder` plugin alone.
    pub fn recorder_keys(&self, from: usize) -> Vec<(String, String, i64)> {
        let mut keys = self.event_keys(from);
        keys.retain(|(plugin, _, _)| plugin == "recorder");
        keys
    }
}

/// `(plugin, hook, id)` as owned strings, for comparing with [`Client::event_keys`].
pub fn key(plugin: &str, hook: &str, id: i64) -> (String, String, i64) {
    (plugin.to_owned(), hook.to_owned(), id)
}

/// The body, after checking the status.
#[track_caller]
pub fn expect(status: u16, response: Response) -> Value {
    assert_eq!(response.0, status, "unexpected answer: {}", response.1);
    response.1
}

/// The `error` object, after checking the status and the code.
#[track_caller]
pub fn expect_error(status: u16, code: &str, response: Response) -> Value {
    let body = expect(status, response);
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "error code in {body}");
    assert!(error["message"].is_string(), "error message in {body}");
    error
}

/// Runs `work(i)` on `n` threads released at once; their answers, by `i`.
pub fn at_once<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let (work, start) = (Arc::new(work), Arc::new(std::sync::Barrier::new(n)));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (work, start) = (work.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                work(i)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a client thread"))
        .collect()
}

/// Waits until `done`, polling, for at most [`DEADLINE`] (then fails the
/// test naming `what`).
#[track_caller]
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The `id` of an entity.
#[track_caller]
pub fn id(entity: &Value) -> i64 {
    entity["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {entity}"))
}

/// The log line the app wrote for a 500 `error` (found by its `request_id`),
/// after checking that the body itself tells nothing but that id: a 500's
/// details are for the log, never for the client.
#[track_caller]
pub fn logged_500(app: &TestApp, error: &Value) -> String {
    let id = error["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request id in {error}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("something went wrong")),
        "a 500 body tells more than that it failed: {error}"
    );
    let marker = format!("request_id={id}");
    app.proc
        .output
        .wait_for("the 500's log line", |out| out.contains(&marker));
    app.proc
        .output
        .text()
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_default()
        .to_owned()
}

/// `value` as a TOML value (strings, numbers, arrays, inline tables).
pub fn toml(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The `id`s (or another integer key, `key`) of a JSON list's items.
#[track_caller]
pub fn keys(list: &Value, key: &str) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| {
            item[key]
                .as_i64()
                .unwrap_or_else(|| panic!("no {key} in {item}"))
        })
        .collect()
}

/// The usernames of the requests received, in arrival order.
pub fn received_names(got: &[receiver::Received]) -> Vec<String> {
    got.iter()
        .map(|r| {
            r.json["data"]["username"]
                .as_str()
                .unwrap_or_else(|| panic!("no username in {}", r.json))
                .to_owned()
        })
        .collect()
}

/// The rows of a listing of deliveries ([`listed`]).
pub fn listed_rows(page: &Value) -> Vec<Value> {
    page["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("no deliveries in {page}"))
        .clone()
}

/// How many of `plugin`'s deliveries have `status`.
pub fn count_status(db: &TestDb, plugin: &str, status: &str) -> i64 {
    db.count(&format!(
        "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = '{plugin}' AND status = '{status}'"
    ))
}

/// The event id of the event that created user `name`.
pub fn key_of_user(db: &TestDb, name: &str) -> String {
    let keys = db.column(&format!(
        "SELECT event_key FROM outbox_events WHERE event_name = 'user.created' \
         AND change LIKE '%\"username\":\"{name}\"%'"
    ));
    assert_eq!(keys.len(), 1, "the event of user {name}: {keys:?}");
    keys[0].clone()
}

/// `GET /api/admin/deliveries?{query}` as the admin.
pub fn listed(app: &TestApp, query: &str) -> Value {
    expect(
        200,
        app.get(&format!("/api/admin/deliveries?{query}"), ADMIN),
    )
}

/// A plugin folder holding `component` as each of `names`.
pub fn component_folder(component: &Path, names: &[&str]) -> TempDir {
    let folder = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(
            component,
            folder.path().join(format!("app_plugin_{name}.wasm")),
        )
        .unwrap();
    }
    folder
}

/// The real app on `backend` with `folder` as its plugin folder.
pub fn launch_real(backend: Backend, folder: &Path, config: &str) -> TestApp {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.to_str().unwrap())
        .config(config);
    TestApp::start_with(backend, options)
}
