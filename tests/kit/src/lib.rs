//! The test kit for plugin authors.
//!
//! - [`HookTest`]: a plugin's hooks on the app's real services, with its own
//!   migrations applied, on a fresh SQLite database in a temporary folder
//!   (removed afterwards), without starting the app:
//!
//! ```text
//! #[test]
//! fn records_new_users() {
//!     app_testkit::run(async {
//!         let kit = HookTest::new().await.register("audit_log", crate::app_plugin_register).await;
//!         let ada = kit.run(admin(), |ctx| async move {
//!             ctx.services().create_user(&ctx, new_user("ada")).await
//!         }).await.unwrap();
//!         assert_eq!(kit.count("SELECT COUNT(*) FROM plugin_audit_log_entries").await, 1);
//!     });
//! }
//! ```
//!
//! - [`HookTest::deliver`]: what those operations committed, delivered to
//!   the plugins' after-commit hooks as the app's worker would.
//! - [`e2e`]: the end-to-end harness: [`plugin_app`] starts the real
//!   `app` binary with only the named plugins of `plugins/`, on a fresh
//!   database, and talks HTTP to it.

use std::future::Future;
use std::sync::Arc;

use app::db::Db;
use app::plugins::{APP_PLUGIN, BuiltIn};
use app::services::AppServices;
use hooks_core::PluginManager;
use hookspecs::host::PluginConfigs;
use hookspecs::serde_json::Value;
use hookspecs::sqlx::Row;
use hookspecs::{
    ApiError, AppHooks, Change, Delivery, HookContext, Identity, NewUser, PluginExport, Services,
};

pub use e2e_tests as e2e;
pub use e2e_tests::{ADMIN, TestApp, expect, expect_error, id, json};

/// A plugin's registration function, as `hookspecs::export_plugin!`
/// defines it in the plugin's crate (`crate::app_plugin_register`).
pub type Register = fn(&Value) -> Result<PluginExport, String>;

/// The app's services and plugins over a fresh database, in process.
pub struct HookTest {
    db: Db,
    hooks: PluginManager<dyn AppHooks>,
    services: Arc<dyn Services>,
    configs: PluginConfigs,
    url: String,
    /// The last outbox event [`HookTest::deliver`] delivered.
    delivered_up_to: hookspecs::tokio::sync::Mutex<i64>,
    // Last: the database file goes after the pool closes.
    _dir: tempfile::TempDir,
}

impl HookTest {
    /// A fresh, migrated SQLite database in a temporary folder.
    ///
    /// # Panics
    /// If the database cannot be created (a test failure, with the reason).
    pub async fn new() -> HookTest {
        let dir = tempfile::tempdir().expect("a temporary folder for the database");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
        let db = Db::open(&url).await.expect("opening the test database");
        let hooks = PluginManager::<dyn AppHooks>::new();
        // The app's own plugin: its default authorization policy answers
        // last, as in the app (its admin token is one nobody can send).
        let token = hookspecs::new_secret("kit-").expect("a random token");
        hooks
            .register(APP_PLUGIN, BuiltIn::new(token))
            .expect("the app's own plugin registers first");
        HookTest {
            db,
            services: Arc::new(AppServices::new(hooks.clone())),
            hooks,
            configs: PluginConfigs::default(),
            url,
            delivered_up_to: Default::default(),
            _dir: dir,
        }
    }

    /// Gives `plugin` the configuration table `table` (what
    /// `[plugins.<plugin>]` would hold), for plugins registered after this.
    pub fn config(mut self, plugin: &str, table: Value) -> Self {
        self.configs.0.insert(plugin.to_owned(), table);
        self
    }

    /// Registers a plugin as the app does: through its registration
    /// function (`crate::app_plugin_register`), with its configuration,
    /// then applies its migrations.
    ///
    /// # Panics
    /// If the plugin refuses its configuration, cannot be registered or its
    /// migrations fail.
    pub async fn register(self, name: &str, register: Register) -> Self {
        let table = self.configs.0.get(name).cloned().unwrap_or(Value::Null);
        let export = register(&table).unwrap_or_else(|e| panic!("plugin {name}: {e}"));
        self.hooks
            .register_plugin(name, export.plugin)
            .unwrap_or_else(|e| panic!("registering {name}: {e}"));
        let names = self.hooks.plugin_names();
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != name).collect();
        self.db
            .migrate_plugin(name, export.migrations, &others)
            .await
            .unwrap_or_else(|e| panic!("plugin {name}'s migrations: {e}"));
        self
    }

    /// The plugin manager, to register statically linked plugins or look
    /// at hook implementations.
    pub fn hooks(&self) -> &PluginManager<dyn AppHooks> {
        &self.hooks
    }

    /// Runs `operation` in one unit of work acting as `actor`, as a request
    /// would: committed if it succeeds, rolled back if it fails.
    ///
    /// # Errors
    /// What the operation answered (a hook's failure included).
    pub async fn run<T, F, Fut>(&self, actor: Option<Identity>, operation: F) -> Result<T, ApiError>
    where
        F: FnOnce(HookContext) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let uow = self.db.begin(true);
        let ctx = hookspecs::host::context(
            uow.clone(),
            actor,
            self.services.clone(),
            Arc::new(self.configs.clone()),
        );
        uow.finish(operation(ctx).await).await
    }

    /// Delivers what the operations run so far committed to the
    /// after-commit hooks (`after_*`) of the registered plugins, as the
    /// app's delivery worker does: in commit order, each plugin's hook on
    /// its own (attempt 1), in a unit of work of its own committed when the
    /// hook returns `Ok`. Each event is delivered once: a second call
    /// delivers only what was committed since.
    ///
    /// # Panics
    /// If the outbox cannot be read.
    pub async fn deliver(&self) -> Vec<Delivered> {
        let mut delivered_up_to = self.delivered_up_to.lock().await;
        let after = *delivered_up_to;
        let rows: Vec<(i64, String, String, String)> = self
            .run(None, |ctx| async move {
                let rows = hookspecs::sqlx::query(
                    "SELECT id, event_key, change, recorded_at FROM outbox_events \
                     WHERE id > $1 ORDER BY id",
                )
                .bind(after)
                .fetch_all(&mut *ctx.db().await?)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                        ))
                    })
                    .collect::<Result<_, hookspecs::sqlx::Error>>()
                    .map_err(ApiError::from)
            })
            .await
            .expect("reading the outbox");
        let mut out = Vec::new();
        for (id, key, change, recorded_at) in rows {
            let change: Change =
                hookspecs::serde_json::from_str(&change).expect("a recorded change");
            let delivery = Delivery {
                event_id: key,
                attempt: 1,
                recorded_at,
                change,
            };
            let plugins = self
                .hooks
                .get_hookimpls(delivery.change.after_hook())
                .unwrap_or_default();
            for plugin in plugins.iter().filter(|i| !i.wrapper).map(|i| i.plugin) {
                let delivery = &delivery;
                let outcome = self
                    .run(None, |ctx| async move {
                        let ctx = hookspecs::host::app_authority(&ctx);
                        app::outbox::deliver_to(&self.hooks, plugin, delivery, &ctx).await
                    })
                    .await
                    .map_err(|e| e.message);
                out.push(Delivered {
                    plugin: plugin.to_owned(),
                    event: delivery.change.name(),
                    outcome,
                });
            }
            *delivered_up_to = id;
        }
        out
    }

    /// Every row's first column of `sql`, as text (`"NULL"` for NULL).
    ///
    /// # Panics
    /// If the query fails.
    pub async fn column(&self, sql: &str) -> Vec<String> {
        e2e_tests::query_column(&self.url, sql).await
    }

    /// A `SELECT COUNT(*) ...` (or any single integer).
    ///
    /// # Panics
    /// If the query fails or does not give one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        let column = self.column(sql).await;
        assert_eq!(column.len(), 1, "{sql} gave {column:?}");
        column[0].parse().expect("an integer")
    }
}

/// Runs a hook test's async body to its end, on a runtime like the app's.
///
/// # Panics
/// If no runtime can be started, or when the body panics.
pub fn run<T>(body: impl Future<Output = T>) -> T {
    hookspecs::tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(body)
}

/// One after-commit delivery made by [`HookTest::deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The plugin whose hook was called.
    pub plugin: String,
    /// The event: `user.created`, ...
    pub event: &'static str,
    /// What the hook answered (its unit of work was committed on `Ok`).
    pub outcome: Result<(), String>,
}

/// The admin, as the admin token identifies it.
pub fn admin() -> Option<Identity> {
    Some(Identity {
        user_id: None,
        name: "admin".into(),
        admin: true,
        via: "app".into(),
    })
}

/// User `id` named `name`, not an admin.
pub fn user(id: i64, name: &str) -> Option<Identity> {
    Some(Identity {
        user_id: Some(id),
        name: name.into(),
        admin: false,
        via: "test".into(),
    })
}

/// A new user `name` with the e-mail `name@example.org`.
pub fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.org"),
        display_name: None,
    }
}

/// Starts the real `app` binary (built first if needed) with only the
/// plugins `names` of the workspace's `plugins/` folder, on a fresh SQLite
/// database; `config` is the config file's text (`""`: none).
///
/// # Panics
/// If the app does not start listening (with its output).
pub fn plugin_app(names: &[&str], config: &str) -> PluginApp {
    let folder = tempfile::tempdir().expect("a temporary plugin folder");
    for name in names {
        let from = e2e_tests::workspace_plugins().join(format!("app_plugin_{name}"));
        assert!(from.is_dir(), "no plugin crate {}", from.display());
        let to = folder.path().join(format!("app_plugin_{name}"));
        std::fs::create_dir(&to).expect("a plugin folder");
        // The app loads a crate folder's library from beside its binary:
        // the folder needs only its manifest.
        std::fs::copy(from.join("Cargo.toml"), to.join("Cargo.toml")).expect("copying a manifest");
    }
    let mut options = e2e_tests::Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", &folder.path().display().to_string());
    if !config.is_empty() {
        options = options.config(config);
    }
    let app = TestApp::start_with(e2e_tests::Backend::Sqlite, options);
    PluginApp {
        app,
        _folder: folder,
    }
}

/// The app [`plugin_app`] started (a [`TestApp`]), and its plugin folder:
/// both removed on drop.
pub struct PluginApp {
    /// The running app.
    pub app: TestApp,
    _folder: tempfile::TempDir,
}

impl std::ops::Deref for PluginApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}
