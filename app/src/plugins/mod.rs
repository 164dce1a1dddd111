//! Plugins in the app: registration (statically linked ones for now), the
//! startup call that lets each add its routes, the app's own built-in
//! plugin (admin token authentication), and the report of what is loaded.

pub mod loader;

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use hooks_core::{Plugin, PluginManager, Tier};
use hookspecs::host::RouteTable;
use hookspecs::prelude::*;
use hookspecs::{PluginConfigs, RouteDef};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// The name of the app's own plugin.
pub const APP_PLUGIN: &str = "app";

/// The app's own hook implementations: the admin token, and the default
/// authorization policy ([`crate::policy`]), both answering last.
pub struct AdminToken {
    token: String,
}

impl AdminToken {
    /// Accepts `token` as the admin credential.
    pub fn new(token: String) -> Self {
        AdminToken { token }
    }
}

#[hookimpl]
impl AppHooks for AdminToken {
    /// Last, so that plugins recognising their own credentials go first.
    #[hookimpl(trylast)]
    async fn authenticate(&self, token: &str, _ctx: &HookContext) -> HookResult<Option<Identity>> {
        let matches: bool = token.as_bytes().ct_eq(self.token.as_bytes()).into();
        Ok(matches.then(|| Identity {
            user_id: None,
            name: "admin".into(),
            admin: true,
            via: APP_PLUGIN.into(),
        }))
    }

    /// Last, so that any plugin with an opinion decides first.
    #[hookimpl(trylast)]
    async fn authorize(
        &self,
        check: &AccessCheck,
        ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        Ok(Some(crate::policy::decide(check, ctx).await?))
    }
}

/// What became of one plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Registered.
    Loaded,
    /// Named in `plugins.disabled`: never opened.
    Disabled,
    /// Not loaded, and why.
    Failed(String),
}

/// One plugin's line in the load report.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The plugin's name.
    pub name: String,
    /// Where it came from (a crate folder, a library, or `linked in`).
    pub source: String,
    /// What became of it.
    pub status: Status,
    /// Its own tables' migrations.
    pub migrations: &'static [hookspecs::Migration],
    /// Loaded but idle until configured, and what to set
    /// ([`hookspecs::PluginExport::idle`]).
    pub idle: Option<String>,
}

impl Entry {
    fn status_text(&self) -> String {
        match &self.status {
            Status::Loaded => match &self.idle {
                Some(why) => format!("loaded, idle: {why}"),
                None => "loaded".into(),
            },
            Status::Disabled => "disabled".into(),
            Status::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// Registers the app's own plugin, the linked-in `plugins`, and every
/// plugin found in the configured folder (in name order). A plugin that
/// fails to load is reported and skipped; a required one that did not load
/// stops startup.
pub fn load(
    hooks: &PluginManager<dyn AppHooks>,
    admin_token: String,
    linked: Vec<(String, Plugin<dyn AppHooks>)>,
    config: &crate::config::PluginsConfig,
    tables: &PluginConfigs,
) -> anyhow::Result<Vec<Entry>> {
    hooks.register(APP_PLUGIN, AdminToken::new(admin_token))?;
    let mut report = Vec::new();
    let register = |name: &str, plugin: Result<Plugin<dyn AppHooks>, String>| match plugin
        .and_then(|p| hooks.register_plugin(name, p).map_err(|e| e.to_string()))
    {
        Ok(()) => Status::Loaded,
        Err(why) => Status::Failed(why),
    };
    for (name, plugin) in linked {
        let status = register(&name, Ok(plugin));
        report.push(Entry {
            name,
            source: "linked in".into(),
            status,
            migrations: &[],
            idle: None,
        });
    }
    let build_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (dir, configured) = config.folder();
    let found = match loader::discover(&dir, &build_dir) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && configured => {
            tracing::warn!(
                "the plugin folder {} (from `[plugins] dir` or APP_PLUGINS_DIR) does not exist: \
                 no plugin is loaded from it; fix the path, or remove the setting",
                dir.display()
            );
            Vec::new()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("no plugin folder at {}", dir.display());
            Vec::new()
        }
        Err(e) => anyhow::bail!("reading the plugin folder {}: {e}", dir.display()),
    };
    let known: Vec<&str> = report
        .iter()
        .map(|e| e.name.as_str())
        .chain(found.iter().map(|c| c.name.as_str()))
        .collect();
    check_tables(tables, &known, &dir, config.file.as_deref())?;
    let mut exports = std::collections::BTreeMap::new();
    for candidate in found {
        let source = candidate.source.display().to_string();
        if config.disabled.contains(&candidate.name) {
            report.push(Entry {
                name: candidate.name,
                source,
                status: Status::Disabled,
                migrations: &[],
                idle: None,
            });
            continue;
        }
        if let Some(problem) = candidate.problem {
            report.push(Entry {
                name: candidate.name,
                source,
                status: Status::Failed(problem),
                migrations: &[],
                idle: None,
            });
            continue;
        }
        let table = tables.0.get(&candidate.name).cloned().unwrap_or_default();
        let export = loader::check_file(&candidate, &dir)
            .and_then(|()| loader::load(&candidate.library, &table));
        exports.insert(candidate.name, (source, export));
    }
    let linked: Vec<String> = report.iter().map(|e| e.name.clone()).collect();
    for (name, source, export) in in_requirement_order(exports, &linked) {
        let migrations = export.as_ref().map(|e| e.migrations).unwrap_or_default();
        let idle = export.as_ref().ok().and_then(|e| e.idle.clone());
        let status = register(&name, export.map(|e| e.plugin));
        report.push(Entry {
            name,
            source,
            status,
            migrations,
            idle,
        });
    }
    for required in &config.required {
        let entry = report.iter().find(|e| &e.name == required);
        match entry.map(|e| &e.status) {
            Some(Status::Loaded) => {}
            Some(_) => anyhow::bail!(
                "required plugin `{required}` is not loaded: {}",
                entry.map(Entry::status_text).unwrap_or_default()
            ),
            None => anyhow::bail!(
                "required plugin `{required}` was not found in {}",
                dir.display()
            ),
        }
    }
    Ok(report)
}

/// One log line per plugin (a failure at WARN), then the summary: written
/// once startup has settled what became of each plugin.
pub fn log_report(report: &[Entry]) {
    for entry in report {
        let line = format!(
            "plugin {} ({}): {}",
            entry.name,
            entry.source,
            entry.status_text()
        );
        match entry.status {
            Status::Failed(_) => tracing::warn!("{line}"),
            _ => tracing::info!("{line}"),
        }
    }
    let count = |wanted: fn(&Status) -> bool| report.iter().filter(|e| wanted(&e.status)).count();
    tracing::info!(
        "plugins: {} loaded, {} disabled, {} failed",
        count(|s| *s == Status::Loaded),
        count(|s| *s == Status::Disabled),
        count(|s| matches!(s, Status::Failed(_)))
    );
}

/// Refuses a configuration table `[plugins.<name>]` that names no plugin:
/// a plugin running on its defaults because of a typo (a quota plugin
/// without its quota) is worse than not starting.
fn check_tables(
    tables: &PluginConfigs,
    known: &[&str],
    dir: &Path,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let mut unknown: Vec<&String> = tables
        .0
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .collect();
    unknown.sort();
    let Some(name) = unknown.first() else {
        return Ok(());
    };
    let closest = known
        .iter()
        .filter(|k| **k != APP_PLUGIN)
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .min()
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2));
    let hint = match closest {
        Some((_, k)) => format!("did you mean `[plugins.{k}]`? "),
        None => String::new(),
    };
    let mut names: Vec<&str> = known.iter().copied().filter(|k| *k != APP_PLUGIN).collect();
    names.sort_unstable();
    let origin = file.map_or_else(String::new, |f| format!(" ({})", f.display()));
    anyhow::bail!(
        "the configuration{origin} has a table `[plugins.{name}]`, but there is no plugin \
         `{name}`: {hint}Fix the table's name or remove it (plugins found in {}: {})",
        dir.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

type Loaded = (String, Result<hookspecs::PluginExport, String>);

/// The loaded plugins in an order where each comes after the plugins it
/// requires; one whose requirement is missing, failed or part of a cycle
/// fails with the reason. `present` are plugins already registered.
fn in_requirement_order(
    mut pending: std::collections::BTreeMap<String, Loaded>,
    present: &[String],
) -> Vec<(String, String, Result<hookspecs::PluginExport, String>)> {
    fn visit(
        name: &str,
        pending: &mut std::collections::BTreeMap<String, Loaded>,
        path: &mut Vec<String>,
        done: &mut Vec<(String, String, Result<hookspecs::PluginExport, String>)>,
        present: &[String],
    ) -> Result<(), String> {
        if present.iter().any(|p| p == name) {
            return Ok(());
        }
        if let Some((_, _, outcome)) = done.iter().find(|(n, ..)| n == name) {
            return match outcome {
                Ok(_) => Ok(()),
                Err(why) => Err(format!("`{name}` did not load: {why}")),
            };
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_owned());
            return Err(format!("requirement cycle {}", cycle.join(" -> ")));
        }
        let Some((source, export)) = pending.remove(name) else {
            return Err(format!("`{name}` is not there"));
        };
        path.push(name.to_owned());
        let export = export.and_then(|export| {
            for needed in &export.requires {
                visit(needed, pending, path, done, present)
                    .map_err(|why| format!("it requires `{needed}`: {why}"))?;
            }
            Ok(export)
        });
        path.pop();
        let outcome = match &export {
            Ok(_) => Ok(()),
            Err(why) => Err(format!("`{name}` did not load: {why}")),
        };
        done.push((name.to_owned(), source, export));
        outcome
    }
    let mut done = Vec::new();
    while let Some(name) = pending.keys().next().cloned() {
        let _ = visit(&name, &mut pending, &mut Vec::new(), &mut done, present);
    }
    done
}

/// Calls `on_plugins_loaded` for each plugin that implements it, in call
/// order, each with its own [`Startup`] (its routes go under its name).
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
        let Err(error) = outcome else { continue };
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

/// Every plugin, each hook's implementations in call order, every plugin
/// route: what `GET /api/admin/plugins` and `app plugins list` show.
pub fn report(hooks: &PluginManager<dyn AppHooks>, loaded: &[Entry], routes: &[RouteDef]) -> Value {
    let app = Entry {
        name: APP_PLUGIN.into(),
        source: "built in".into(),
        status: Status::Loaded,
        migrations: &[],
        idle: None,
    };
    // Each hook's implementations, fetched once; both lists derive from them.
    let by_hook: Vec<(&str, Vec<hooks_core::ImplInfo>)> = hooks
        .hookspecs()
        .iter()
        .map(|spec| {
            (
                spec.name,
                hooks.get_hookimpls(spec.name).unwrap_or_default(),
            )
        })
        .collect();
    let plugins: Vec<Value> = std::iter::once(&app)
        .chain(loaded)
        .map(|entry| {
            let name = entry.name.as_str();
            let implemented: Vec<&str> = by_hook
                .iter()
                .filter(|(_, impls)| impls.iter().any(|i| i.plugin == name))
                .map(|(hook, _)| *hook)
                .collect();
            json!({"name": name, "source": entry.source, "status": entry.status_text(), "hooks": implemented})
        })
        .collect();
    let calls: serde_json::Map<String, Value> = by_hook
        .iter()
        .map(|(hook, impls)| {
            let impls: Vec<Value> = impls
                .iter()
                .map(|i| {
                    let tier = match i.tier {
                        Tier::TryFirst => "tryfirst",
                        Tier::Normal => "normal",
                        Tier::TryLast => "trylast",
                    };
                    json!({"plugin": i.plugin, "priority": i.priority, "tier": tier, "wrapper": i.wrapper, "why": i.why()})
                })
                .collect();
            ((*hook).to_owned(), Value::Array(impls))
        })
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .filter(|r| r.owner != APP_PLUGIN)
        .map(|r| json!({"method": r.method.as_str(), "path": r.path, "plugin": r.owner}))
        .collect();
    json!({"plugins": plugins, "hooks": calls, "routes": routes})
}
