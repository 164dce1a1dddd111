//! Reloading a component without a restart: its crate rebuilt (or its file
//! read again), loaded, migrated, checked, then swapped for the running
//! version in one step ([`PluginManager::replace`]). The engine's snapshot
//! is what makes the swap safe: a hook call holds the snapshot it started
//! with, so calls in flight finish on the old version and every call that
//! starts after the swap gets the new one, with the hooks (and call-order
//! options) of its own manifest. A new version that fails anywhere before
//! the swap is refused and the old one runs on.
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

use super::load::{build_dir, check_table_prefix, open};
use super::report::{Entries, Entry, Kind, Status};
use super::{component, discovery};

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
    dir: PathBuf,
    entries: Entries,
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
    ) -> Reloader {
        Reloader {
            hooks,
            db,
            configs,
            dir: config.folder().0,
            entries,
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
            Ok((source, migrations)) => {
                entry.generation += 1;
                entry.source = source;
                entry.status = Status::Loaded;
                entry.migrations = migrations;
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

    /// The new version, built, loaded, migrated and swapped in: its source
    /// and migrations.
    async fn load_new(
        &self,
        name: &str,
    ) -> Result<(String, &'static [hookspecs::Migration]), String> {
        let (dir, table, owned) = (
            self.dir.clone(),
            self.configs.0.get(name).cloned().unwrap_or_default(),
            name.to_owned(),
        );
        // Building and compiling take seconds: off the async workers.
        let opened = tokio::task::spawn_blocking(move || {
            let build_dir = build_dir().map_err(|e| e.to_string())?;
            let found = discovery::discover(&dir, &build_dir)
                .map_err(|e| format!("cannot read the plugin folder {}: {e}", dir.display()))?;
            let names: Vec<String> = found.iter().map(|c| c.name.clone()).collect();
            let candidate = found
                .into_iter()
                .find(|c| c.name == owned)
                .ok_or_else(|| format!("it is no longer in the plugin folder {}", dir.display()))?;
            if let Some(problem) = &candidate.problem {
                return Err(problem.clone());
            }
            if !candidate.is_component() {
                return Err("it is a native plugin now: restart the app to load it".to_owned());
            }
            check_table_prefix(&candidate, &names)?;
            let export = open(&candidate, &dir, &build_dir, &table)?;
            Ok((candidate.source.display().to_string(), export))
        })
        .await
        .map_err(|e| format!("its load panicked: {e}"))??;
        let (source, export) = opened;
        let missing: Vec<&String> = export
            .requires
            .iter()
            .filter(|r| !self.hooks.has_plugin(r))
            .collect();
        if let Some(required) = missing.first() {
            return Err(format!("it requires `{required}`, which is not loaded"));
        }
        // On a blocking thread of its own: the compiler cannot prove sqlx's
        // migration future `Send`, as the HTTP handler's future must be.
        let (db, owned, migrations) = (self.db.clone(), name.to_owned(), export.migrations);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            runtime.block_on(db.migrate_plugin(&owned, migrations))
        })
        .await
        .map_err(|e| format!("its migrations panicked: {e}"))??;
        let plugin = export.plugin;
        self.start(name, &plugin).await?;
        let swapped = if self.hooks.has_plugin(name) {
            self.hooks.replace(name, plugin).map(drop)
        } else {
            self.hooks.register_plugin(name, plugin)
        };
        swapped.map_err(|e| e.to_string())?;
        component::go_live(name);
        Ok((source, export.migrations))
    }

    /// The new version's own startup: its `on_plugins_loaded` with a fresh
    /// [`Startup`](hookspecs::Startup) (on a table of its own: the router
    /// keeps the routes it has), whose routes must be those the router
    /// has for it.
    async fn start(&self, name: &str, plugin: &Plugin<dyn AppHooks>) -> Result<(), String> {
        component::unstage(name);
        if !plugin.impls().iter().any(|d| d.hook == "on_plugins_loaded") {
            return component::check_routes(name);
        }
        let startup = hookspecs::host::startup(name, RouteTable::default(), self.configs.clone());
        plugin
            .object()
            .on_plugins_loaded(&startup)
            .await
            .map_err(|e| format!("on_plugins_loaded: {e}"))?;
        component::check_routes(name)
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
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
