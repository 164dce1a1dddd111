//! After registration: each plugin's migrations, then its
//! `on_plugins_loaded` (its routes); a plugin that fails either is taken
//! out again, or stops startup if it is required.

use std::sync::Arc;

use anyhow::anyhow;
use hooks_core::PluginManager;
use hookspecs::AppHooks;
use hookspecs::host::{PluginConfigs, RouteTable};

use super::report::{Entry, Status};

/// Calls `on_plugins_loaded` for each plugin that implements it, in call
/// order, each with its own [`Startup`](hookspecs::Startup) (its routes go under its name).
///
/// A plugin that fails there (error or panic) is unregistered with its
/// routes and reported as failed, and startup goes on without it, unless it
/// is required. A route clash stops startup: two owners claim one route.
pub async fn start(
    hooks: &PluginManager<dyn AppHooks>,
    table: &RouteTable,
    configs: &Arc<PluginConfigs>,
    report: &mut [Entry],
    required: &[String],
) -> anyhow::Result<()> {
    let starting = hooks.get_hookimpls("on_plugins_loaded").unwrap_or_default();
    for imp in starting.iter().filter(|i| !i.wrapper) {
        // Asked each time: a plugin that failed before this one is gone.
        let names = hooks.plugin_names();
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != imp.plugin).collect();
        let startup = hookspecs::host::startup(imp.plugin, table.clone(), configs.clone());
        let outcome = hooks
            .subset_hook_caller(&others)?
            .on_plugins_loaded(&startup)
            .await;
        let Err(error) = outcome else {
            continue;
        };
        let clash = error
            .innermost()
            .cause()
            .and_then(|c| c.downcast_ref::<hookspecs::RouteError>())
            .is_some_and(|e| matches!(e, hookspecs::RouteError::Clash { .. }));
        if clash || required.iter().any(|r| r == imp.plugin) {
            return Err(anyhow!("startup failed: {error}"));
        }
        let why = format!("on_plugins_loaded: {error}");
        remove(hooks, table, report, imp.plugin, why)?;
    }
    Ok(())
}

/// Applies each loaded plugin's migrations; one that fails fails its plugin
/// (or startup, if the plugin is required).
pub async fn migrate(
    db: &crate::db::Db,
    hooks: &PluginManager<dyn AppHooks>,
    table: &RouteTable,
    report: &mut [Entry],
    required: &[String],
) -> anyhow::Result<()> {
    let loaded: Vec<(String, &'static [hookspecs::Migration])> = report
        .iter()
        .filter(|e| e.status == Status::Loaded && !e.migrations.is_empty())
        .map(|e| (e.name.clone(), e.migrations))
        .collect();
    for (name, migrations) in loaded {
        match db.migrate_plugin(&name, migrations).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("plugin {name}: {n} migration(s) applied"),
            Err(why) if required.contains(&name) => {
                anyhow::bail!("required plugin `{name}` failed: {why}")
            }
            Err(why) => remove(hooks, table, report, &name, why)?,
        }
    }
    Ok(())
}

/// Takes a plugin that failed after loading out again: unregistered, its
/// routes removed, reported failed.
fn remove(
    hooks: &PluginManager<dyn AppHooks>,
    table: &RouteTable,
    report: &mut [Entry],
    name: &str,
    why: String,
) -> anyhow::Result<()> {
    hooks.unregister(name)?;
    table.remove_owner(name);
    if let Some(entry) = report.iter_mut().find(|e| e.name == name) {
        entry.status = Status::Failed(why);
    }
    Ok(())
}
