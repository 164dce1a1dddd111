//! After registration: each plugin's migrations, then its
//! `on_plugins_loaded` (its routes); a plugin that fails either is taken
//! out again with the plugins that require it, or stops startup if one of
//! them is required.

use std::sync::Arc;

use anyhow::anyhow;
use hooks_core::PluginManager;
use hookspecs::AppHooks;
use hookspecs::host::{PluginConfigs, RouteTable};

use super::report::{Entry, Status};
use super::requirements::fail_dependents;

/// Calls `on_plugins_loaded` for each plugin that implements it, in call
/// order, each with its own [`Startup`](hookspecs::Startup) (its routes go under its name).
///
/// A plugin that fails there (error or panic) is unregistered with its
/// routes and reported as failed, as are the plugins requiring it, and
/// startup goes on without them, unless one is required. A route clash stops startup: two owners claim one route.
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
        remove(hooks, table, report, imp.plugin, why, required)?;
    }
    Ok(())
}

/// Applies each loaded plugin's migrations, requirements first; one that
/// fails fails its plugin and the plugins requiring it (or startup, if one
/// of them is required).
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
        // Failed since with a requirement: its tables are not wanted.
        if !report
            .iter()
            .any(|e| e.name == name && e.status == Status::Loaded)
        {
            continue;
        }
        let others: Vec<&str> = (report.iter().map(|e| e.name.as_str()))
            .filter(|other| *other != name)
            .collect();
        match db.migrate_plugin(&name, migrations, &others).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("plugin {name}: {n} migration(s) applied"),
            Err(why) if required.contains(&name) => {
                anyhow::bail!("required plugin `{name}` failed: {why}")
            }
            Err(why) => remove(hooks, table, report, &name, why, required)?,
        }
    }
    Ok(())
}

/// Takes a plugin that failed after loading out again, with the plugins
/// that require it: unregistered, their routes removed, reported failed.
///
/// # Errors
///
/// One of them is required, naming it and why.
fn remove(
    hooks: &PluginManager<dyn AppHooks>,
    table: &RouteTable,
    report: &mut [Entry],
    name: &str,
    why: String,
    required: &[String],
) -> anyhow::Result<()> {
    let entry = report
        .iter_mut()
        .find(|e| e.name == name && e.status == Status::Loaded);
    if let Some(entry) = entry {
        entry.status = Status::Failed(why);
    }
    let dependents = fail_dependents(report, name);
    for plugin in std::iter::once(name).chain(dependents.iter().map(String::as_str)) {
        hooks.unregister(plugin)?;
        table.remove_owner(plugin);
    }
    if let Some(entry) = report
        .iter()
        .find(|e| dependents.contains(&e.name) && required.contains(&e.name))
    {
        anyhow::bail!(
            "required plugin `{}` is not loaded: {}",
            entry.name,
            entry.status_text()
        );
    }
    Ok(())
}
