//! Reloading a component without a restart: its crate rebuilt (or its file
//! read again), loaded, migrated, checked, then swapped for the running
//! version in one step ([`PluginManager::replace`]). The engine's snapshot
//! is what makes the swap safe: a hook call holds the snapshot it started
//! with, so calls in flight finish on the old version and every call that
//! starts after the swap gets the new one, with the hooks (and call-order
//! options) of its own manifest. A new version that fails anywhere before
//! the swap is refused and the old one runs on.
//!
//! A reload is the plugin's own startup: its `on_plugins_loaded` runs again
//! with a fresh [`Startup`](hookspecs::Startup), on a new route table (the
//! router's routes but the plugin's own), where its routes are checked as
//! at startup (paths, clashes with core and other plugins' routes). The new
//! router replaces the old one right after the hooks are swapped; a request
//! matched against the old router finishes on the old version its route
//! captured. A `Startup` kept from an earlier startup stays frozen.
//!
//! Native plugins are never reloaded: a library is never unloaded (its
//! code may still be referenced by thread-locals, statics, threads or
//! vtables handed out), and a second copy loaded beside it would share the
//! SDK's state with the first.

use std::path::PathBuf;
use std::sync::Arc;

use hooks_core::{Plugin, PluginManager};
use hookspecs::AppHooks;
use hookspecs::host::{PluginConfigs, RouteTable};

use super::discovery;
use super::load::{build_dir, open, refusal};
use super::report::{Entries, Entry, Kind, Status};
use super::requirements::unmet_requirement;
use crate::http::router::{Live, Router};

/// Why a reload did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadError {
    /// No plugin of that name.
    Unknown(String),
    /// It cannot be reloaded (native, linked in, built in, disabled), and
    /// why.
    NotReloadable(String),
    /// The new version was refused, and why: the old one runs on.
    Refused(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Unknown(name) => write!(f, "there is no plugin `{name}`"),
            ReloadError::NotReloadable(why) | ReloadError::Refused(why) => f.write_str(why),
        }
    }
}

/// Reloads the components of the plugin folder, one at a time.
pub struct Reloader {
    hooks: PluginManager<dyn AppHooks>,
    db: crate::db::Db,
    configs: Arc<PluginConfigs>,
    /// `[plugins]`, to judge a new version as startup judged the first.
    plugins: crate::config::PluginsConfig,
    dir: PathBuf,
    entries: Entries,
    /// The router the requests are matched against: replaced by each reload.
    router: Live,
    /// One reload at a time: two at once of one plugin would race to swap.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader of the plugins in `entries` (the load report, which it
    /// updates), found in the configured plugin folder.
    pub fn new(
        hooks: PluginManager<dyn AppHooks>,
        db: crate::db::Db,
        configs: Arc<PluginConfigs>,
        config: &crate::config::PluginsConfig,
        entries: Entries,
        router: Live,
    ) -> Reloader {
        Reloader {
            hooks,
            db,
            configs,
            plugins: config.clone(),
            dir: config.folder().0,
            entries,
            router,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// The plugin folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The components of the report that a reload may act on (loaded, or
    /// failed and maybe fixed since), with where each comes from.
    pub fn components(&self) -> Vec<(String, PathBuf)> {
        self.lock_entries()
            .iter()
            .filter(|e| e.kind == Kind::Component && e.status != Status::Disabled)
            .map(|e| (e.name.clone(), PathBuf::from(&e.source)))
            .collect()
    }

    /// Rebuilds (a crate) and loads the component `name` again, and swaps
    /// it for the running version: its generation number.
    ///
    /// # Errors
    ///
    /// [`ReloadError`]: no such plugin; not a component (or disabled); the
    /// new version refused, with the reason (also kept in the report).
    pub async fn reload(&self, name: &str) -> Result<u32, ReloadError> {
        let _one = self.one_at_a_time.lock().await;
        {
            let entries = self.lock_entries();
            let entry = entries
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| ReloadError::Unknown(name.to_owned()))?;
            reloadable(entry)?;
        }
        let outcome = self.load_new(name).await;
        let mut entries = self.lock_entries();
        let entry = entries
            .iter_mut()
            .find(|e| e.name == name)
            .ok_or_else(|| ReloadError::Unknown(name.to_owned()))?;
        match outcome {
            Ok((source, migrations, requires)) => {
                entry.generation += 1;
                entry.source = source;
                entry.status = Status::Loaded;
                entry.migrations = migrations;
                entry.requires = requires;
                entry.reload_error = None;
                tracing::info!("plugin {name}: reloaded (generation {})", entry.generation);
                Ok(entry.generation)
            }
            Err(why) => {
                let running = entry.status == Status::Loaded;
                tracing::warn!(
                    "plugin {name}: reload refused{}: {why}",
                    if running {
                        ", the previous version runs on"
                    } else {
                        ""
                    }
                );
                entry.reload_error = Some(why.clone());
                Err(ReloadError::Refused(if running {
                    format!(
                        "the new version of `{name}` was refused and the previous one \
                         (generation {}) runs on: {why}",
                        entry.generation
                    )
                } else {
                    format!("`{name}` could not be loaded: {why}")
                }))
            }
        }
    }

    /// The new version, built, loaded, migrated and swapped in: its source,
    /// migrations and requirements.
    async fn load_new(
        &self,
        name: &str,
    ) -> Result<(String, &'static [hookspecs::Migration], Vec<String>), String> {
        let (dir, table, owned, plugins) = (
            self.dir.clone(),
            self.configs.0.get(name).cloned().unwrap_or_default(),
            name.to_owned(),
            self.plugins.clone(),
        );
        // The other plugins, as startup knew them (linked in too).
        let mut names: Vec<String> = self.lock_entries().iter().map(|e| e.name.clone()).collect();
        // Building and compiling take seconds: off the async workers.
        let opened = tokio::task::spawn_blocking(move || {
            let build_dir = build_dir().map_err(|e| e.to_string())?;
            let found = discovery::discover(&dir, &build_dir)
                .map_err(|e| format!("cannot read the plugin folder {}: {e}", dir.display()))?;
            names.extend(found.iter().map(|c| c.name.clone()));
            let candidate = found
                .into_iter()
                .find(|c| c.name == owned)
                .ok_or_else(|| format!("it is no longer in the plugin folder {}", dir.display()))?;
            if let Some(why) = refusal(&candidate, &plugins, &names).and_then(Status::reason) {
                return Err(why);
            }
            if !candidate.is_component() {
                return Err("it is a native plugin now: restart the app to load it".to_owned());
            }
            let export = open(&candidate, &dir, &build_dir, &table)?;
            Ok((candidate.source.display().to_string(), export))
        })
        .await
        .map_err(|e| format!("its load panicked: {e}"))??;
        let (source, export) = opened;
        if let Some(why) = unmet_requirement(&export.requires, &self.lock_entries()) {
            return Err(why);
        }
        // On a blocking thread of its own: the compiler cannot prove sqlx's
        // migration future `Send`, as the HTTP handler's future must be.
        let (db, owned, migrations) = (self.db.clone(), name.to_owned(), export.migrations);
        let others: Vec<String> = (self.lock_entries().iter())
            .filter(|e| e.name != name)
            .map(|e| e.name.clone())
            .collect();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            runtime.block_on(db.migrate_plugin(&owned, migrations, &others))
        })
        .await
        .map_err(|e| format!("its migrations panicked: {e}"))??;
        let plugin = export.plugin;
        let router = start(&self.router.load(), name, &plugin, &self.configs).await?;
        let swapped = if self.hooks.has_plugin(name) {
            self.hooks.replace(name, plugin).map(drop)
        } else {
            self.hooks.register_plugin(name, plugin)
        };
        swapped.map_err(|e| e.to_string())?;
        // Right after the hooks: between the two, a request may still reach
        // the old version's routes, which call the old version, whole.
        self.router.store(Arc::new(router));
        // A plugin given its first after-commit hook gets its queue.
        crate::outbox::plugins_changed();
        Ok((source, export.migrations, export.requires))
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The new version's own startup: its `on_plugins_loaded` with a fresh
/// [`Startup`](hookspecs::Startup) on a table of `router`'s routes but
/// those of `name`, where its routes are checked as at startup. The router
/// of that table, for the swap; nothing changes yet.
async fn start(
    router: &Router,
    name: &str,
    plugin: &Plugin<dyn AppHooks>,
    configs: &Arc<PluginConfigs>,
) -> Result<Router, String> {
    let table = RouteTable::default();
    for route in router.routes().iter().filter(|r| r.owner != name) {
        table.add(route.clone()).map_err(|e| e.to_string())?;
    }
    if plugin.impls().iter().any(|d| d.hook == "on_plugins_loaded") {
        let startup = hookspecs::host::startup(name, table.clone(), configs.clone());
        plugin
            .object()
            .on_plugins_loaded(&startup)
            .await
            .map_err(|e| format!("on_plugins_loaded: {e}"))?;
    }
    Router::new(table.freeze()).map_err(|e| format!("its routes: {e}"))
}

/// Refuses what a reload cannot act on, saying why.
fn reloadable(entry: &Entry) -> Result<(), ReloadError> {
    let name = &entry.name;
    match entry.kind {
        Kind::Component if entry.status == Status::Disabled => Err(ReloadError::NotReloadable(
            format!("`{name}` is disabled in the configuration ([plugins] disabled)"),
        )),
        Kind::Component => Ok(()),
        Kind::Native => Err(ReloadError::NotReloadable(format!(
            "`{name}` is a native plugin, and native plugins are never unloaded: its library's \
             code may still be referenced (by thread-locals, statics, threads or values it \
             handed out), so it cannot be replaced while the app runs. Restart the app to \
             load a new version"
        ))),
        Kind::Linked | Kind::BuiltIn => Err(ReloadError::NotReloadable(format!(
            "`{name}` is part of the app's binary: rebuild and restart the app to change it"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use hookspecs::Method;
    use hookspecs::host::{Guard, RouteDef};
    use hookspecs::prelude::*;

    use super::*;

    /// A version of a plugin whose `on_plugins_loaded` adds `GET` routes on
    /// these paths.
    struct Version(&'static [&'static str]);

    #[hookimpl]
    impl AppHooks for Version {
        async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
            for path in self.0 {
                startup
                    .routes()
                    .get(path, |_req: Request| async { Ok(json!({})) })?;
            }
            Ok(())
        }
    }

    fn route(path: &str, owner: &str) -> RouteDef {
        RouteDef::new(
            Method::Get,
            path,
            owner,
            Guard::Public,
            |_: Request| async { Ok(Reply::no_content()) },
        )
    }

    fn running() -> Router {
        Router::new(vec![
            route("/health", "app"),
            route("/plugins/notes/a", "notes"),
            route("/plugins/notes/b", "notes"),
            route("/plugins/other/c", "other"),
            // Not a path `other` could add: here to meet a clash with it.
            route("/plugins/notes/taken", "other"),
        ])
        .unwrap()
    }

    async fn restart(router: &Router, paths: &'static [&'static str]) -> Result<Router, String> {
        let configs = Arc::new(PluginConfigs::default());
        start(router, "notes", &Plugin::new(Version(paths)), &configs).await
    }

    /// Whether `GET path` has a route.
    async fn routed(router: &Router, path: &str) -> bool {
        let uri = path.parse().expect("a path");
        router.find(&hyper::Method::GET, &uri).await.is_some()
    }

    fn paths(router: &Router) -> Vec<(&str, &str)> {
        let each = router.routes().iter();
        each.map(|r| (r.owner.as_str(), r.path.as_str())).collect()
    }

    #[tokio::test]
    async fn a_restart_replaces_the_plugins_routes_as_a_whole() {
        let old = running();
        let new = restart(&old, &["/b", "/new"]).await.unwrap();
        assert_eq!(
            paths(&new),
            [
                ("app", "/health"),
                ("other", "/plugins/other/c"),
                ("other", "/plugins/notes/taken"),
                ("notes", "/plugins/notes/b"),
                ("notes", "/plugins/notes/new"),
            ]
        );
        assert!(!routed(&new, "/plugins/notes/a").await);
        assert!(routed(&new, "/plugins/notes/new").await);
        // The running router is another value, untouched.
        assert_eq!(paths(&old).len(), 5);
        assert!(routed(&old, "/plugins/notes/a").await);
    }

    #[tokio::test]
    async fn a_restart_whose_routes_clash_is_refused_naming_both() {
        let old = running();
        let own = restart(&old, &["/x/:one", "/x/:two"]).await.err().unwrap();
        assert_eq!(
            own,
            "on_plugins_loaded: route GET /plugins/notes/x/:two of `notes` clashes with \
             GET /plugins/notes/x/:one of `notes`"
        );
        // Only a route built by hand has a core route's path under a
        // plugin's prefix: a restart checks against it all the same.
        let core = Router::new(vec![route("/plugins/notes/health", "app")]).unwrap();
        assert_eq!(
            restart(&core, &["/health"]).await.err().unwrap(),
            "on_plugins_loaded: route GET /plugins/notes/health of `notes` clashes with \
             GET /plugins/notes/health of `app`"
        );
        let other = restart(&old, &["/taken"]).await.err().unwrap();
        assert!(
            other.contains(
                "route GET /plugins/notes/taken of `notes` clashes with \
                 GET /plugins/notes/taken of `other`"
            ),
            "{other}"
        );
    }
}
