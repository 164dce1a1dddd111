//! Registration: the app's own plugin, the linked-in ones, then every plugin
//! of the folder (found by [`super::discovery`], opened by
//! [`super::loader`]) in requirement order; the config tables checked
//! against what was found.

use std::path::Path;

use hooks_core::{Plugin, PluginManager};
use hookspecs::host::PluginConfigs;
use hookspecs::{AppHooks, PluginExport};

use super::discovery::Candidate;
use super::report::{Entry, Kind, Status};
use super::requirements::in_requirement_order;
use super::{APP_PLUGIN, BuiltIn, build, component, discovery, loader};

/// Registers the app's own plugin, the linked-in `plugins`, and every
/// plugin found in the configured folder (in name order). A plugin that
/// fails to load is reported and skipped; a required one that did not load
/// stops startup.
pub fn load(
    hooks: &PluginManager<dyn AppHooks>,
    admin_token: String,
    linked: Vec<(String, Plugin<dyn AppHooks>)>,
    whole: &crate::config::Config,
    tables: &PluginConfigs,
) -> anyhow::Result<Vec<Entry>> {
    let config = &whole.plugins;
    hooks.register(APP_PLUGIN, BuiltIn::new(admin_token))?;
    let mut report = Vec::new();
    let register = |name: &str, plugin: Result<Plugin<dyn AppHooks>, String>| match plugin
        .and_then(|p| hooks.register_plugin(name, p).map_err(|e| e.to_string()))
    {
        Ok(()) => Status::Loaded,
        Err(why) => Status::Failed(why),
    };
    for (name, plugin) in linked {
        let status = register(&name, Ok(hookspecs::host::expand_catch_alls(plugin)));
        report.push(Entry::new(name, "linked in".into(), Kind::Linked, status));
    }
    let build_dir = build_dir()?;
    let (dir, configured) = config.folder();
    let found = match discovery::discover(&dir, &build_dir) {
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
    let sections = [
        ("plugins", tables.0.keys().collect::<Vec<_>>()),
        ("deliveries", whole.deliveries.plugins.keys().collect()),
    ];
    check_tables(&sections, &known, &dir, config.file.as_deref())?;
    let known: Vec<String> = known.into_iter().map(str::to_owned).collect();
    let mut exports = std::collections::BTreeMap::new();
    let mut kinds = std::collections::BTreeMap::new();
    for candidate in found {
        let source = candidate.source.display().to_string();
        let kind = candidate.kind();
        if let Some(status) = refusal(&candidate, config, &known) {
            report.push(Entry::new(candidate.name, source, kind, status));
            continue;
        }
        let table = tables.0.get(&candidate.name).cloned().unwrap_or_default();
        // One plugin's load failing in any way fails that plugin only, as a
        // reload's does (it runs on a task of its own).
        let export = std::panic::catch_unwind(|| open(&candidate, &dir, &build_dir, &table))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "its load panicked: {}",
                    super::panic_message(&*panic)
                ))
            });
        kinds.insert(candidate.name.clone(), kind);
        exports.insert(candidate.name, (source, export));
    }
    for (name, source, export) in in_requirement_order(exports, &report) {
        let migrations = export.as_ref().map(|e| e.migrations).unwrap_or_default();
        let idle = export.as_ref().ok().and_then(|e| e.idle.clone());
        let requires = export
            .as_ref()
            .map(|e| e.requires.clone())
            .unwrap_or_default();
        let status = register(&name, export.map(|e| e.plugin));
        let kind = kinds.get(&name).copied().unwrap_or(Kind::Native);
        report.push(Entry {
            migrations,
            idle,
            requires,
            ..Entry::new(name, source, kind, status)
        });
    }
    for required in &config.required {
        // A loaded one, if any: a linked-in plugin and one of the folder
        // may share a name.
        let entry = report
            .iter()
            .filter(|e| &e.name == required)
            .min_by_key(|e| e.status != Status::Loaded);
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

/// The folder of the running binary, where the workspace's build put the
/// plugin crates' libraries.
///
/// # Errors
///
/// The binary's path cannot be found.
pub(super) fn build_dir() -> std::io::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

/// Opens one plugin of the folder, with its table of `[plugins.<name>]`:
/// a component crate is built first; the file is checked; a component is
/// compiled (or taken from the cache) and sandboxed, a library opened.
/// What startup and a reload both do.
///
/// # Errors
///
/// Why it cannot be loaded.
pub(super) fn open(
    candidate: &Candidate,
    dir: &Path,
    build_dir: &Path,
    table: &serde_json::Value,
) -> Result<PluginExport, String> {
    if candidate.component_crate {
        loader::check_crate(&candidate.source, dir)?;
        build::build(&candidate.source, &candidate.name, build_dir)?;
    }
    loader::check_file(candidate, dir)?;
    if candidate.is_component() {
        let cache = build_dir.join("component-cache");
        component::load(&candidate.library, &candidate.name, table, &cache)
    } else {
        loader::load(&candidate.library, table)
    }
}

/// Why a plugin found in the folder is not to be opened, if it is not:
/// disabled, refused as found (misnamed, found twice...), or a component
/// whose tables would include another plugin's (`others`: the names of
/// the other plugins). What startup, a reload and `app package` judge
/// first, so that none opens or ships a file the others would refuse.
pub(crate) fn refusal(
    candidate: &Candidate,
    config: &crate::config::PluginsConfig,
    others: &[String],
) -> Option<Status> {
    if config.disabled.contains(&candidate.name) {
        return Some(Status::Disabled);
    }
    if let Some(problem) = &candidate.problem {
        return Some(Status::Failed(problem.clone()));
    }
    check_table_prefix(candidate, others)
        .err()
        .map(Status::Failed)
}

/// Refuses a component whose tables would include another plugin's: a
/// component's SQL may touch `plugin_<name>_*`, which for a component
/// `audit` covers `plugin_audit_log_*`, the tables of `audit_log`.
/// `others` are the names of the other plugins (linked in, or in the
/// folder).
///
/// # Errors
///
/// Naming both plugins.
fn check_table_prefix(candidate: &Candidate, others: &[String]) -> Result<(), String> {
    if !candidate.is_component() {
        return Ok(());
    }
    let name = &candidate.name;
    let prefix = format!("{name}_");
    match others.iter().find(|other| other.starts_with(&prefix)) {
        Some(other) => Err(format!(
            "its tables (plugin_{name}_*) would include those of the plugin `{other}` \
             (plugin_{other}_*): a component's name followed by `_` may not begin another \
             plugin's name; rename one of them"
        )),
        None => Ok(()),
    }
}

/// Refuses a configuration table `[plugins.<name>]` or
/// `[deliveries.<name>]` that names no plugin: a plugin running on its
/// defaults because of a typo (a quota plugin without its quota) is worse
/// than not starting. `sections`: each section's plugin tables.
fn check_tables(
    sections: &[(&str, Vec<&String>)],
    known: &[&str],
    dir: &Path,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let mut unknown: Vec<(&str, &String)> = sections
        .iter()
        .flat_map(|(section, names)| names.iter().map(move |name| (*section, *name)))
        .filter(|(_, name)| !known.contains(&name.as_str()))
        .collect();
    unknown.sort();
    let Some((section, name)) = unknown.first() else {
        return Ok(());
    };
    let closest = known
        .iter()
        .filter(|k| **k != APP_PLUGIN)
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .min()
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2));
    let hint = match closest {
        Some((_, k)) => format!("did you mean `[{section}.{k}]`? "),
        None => String::new(),
    };
    let mut names: Vec<&str> = known.iter().copied().filter(|k| *k != APP_PLUGIN).collect();
    names.sort_unstable();
    let origin = file.map_or_else(String::new, |f| format!(" ({})", f.display()));
    anyhow::bail!(
        "the configuration{origin} has a table `[{section}.{name}]`, but there is no plugin \
         `{name}`: {hint}Fix the table's name or remove it (plugins found in {}: {})",
        dir.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Candidate, check_table_prefix};

    fn names(all: &[&str]) -> Vec<String> {
        all.iter().map(|n| (*n).to_owned()).collect()
    }

    fn found(name: &str, file: &str) -> Candidate {
        Candidate {
            name: name.into(),
            library: PathBuf::from(file),
            source: PathBuf::from(file),
            problem: None,
            component_crate: false,
        }
    }

    #[test]
    fn a_component_named_as_the_start_of_another_plugin_is_refused_naming_both() {
        let audit = found("audit", "app_plugin_audit.wasm");
        assert_eq!(
            check_table_prefix(&audit, &names(&["audit", "audit_log", "notes"])).unwrap_err(),
            "its tables (plugin_audit_*) would include those of the plugin `audit_log` \
             (plugin_audit_log_*): a component's name followed by `_` may not begin another \
             plugin's name; rename one of them"
        );
        // Without the `_`, the tables do not overlap: `plugin_audit_*` and
        // `plugin_auditor_*`.
        assert!(check_table_prefix(&audit, &names(&["audit", "auditor", "aud"])).is_ok());
        // The longer name is not the one that reaches further.
        let audit_log = found("audit_log", "app_plugin_audit_log.wasm");
        assert!(check_table_prefix(&audit_log, &names(&["audit", "audit_log"])).is_ok());
        // A native plugin's SQL is not checked: its name reaches nothing.
        let native = found("audit", "libapp_plugin_audit.so");
        assert!(check_table_prefix(&native, &names(&["audit", "audit_log"])).is_ok());
    }
}
