//! What became of each plugin: the load report, its log lines, and the
//! JSON `GET /api/admin/plugins` and `app plugins list` show.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use hooks_core::{PluginManager, Tier};
use hookspecs::AppHooks;
use hookspecs::host::RouteDef;
use serde_json::{Value, json};

use crate::db::RetryStats;

use super::APP_PLUGIN;

/// The load report, shared by the admin report and the reloads that
/// update it.
pub type Entries = Arc<std::sync::Mutex<Vec<Entry>>>;

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

impl Status {
    /// Why a plugin with this status does not run, as said where it was
    /// refused (`None`: it is loaded).
    pub fn reason(self) -> Option<String> {
        match self {
            Status::Loaded => None,
            Status::Disabled => {
                Some("it is disabled in the configuration ([plugins] disabled)".into())
            }
            Status::Failed(why) => Some(why),
        }
    }
}

/// Which kind of plugin it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The app's own.
    BuiltIn,
    /// Linked into the binary.
    Linked,
    /// A native library (a crate of the folder or a prebuilt one): never
    /// unloaded, so never reloaded.
    Native,
    /// A WebAssembly component (a crate of the folder or a prebuilt
    /// `.wasm`): sandboxed, reloadable.
    Component,
}

impl Kind {
    /// As the report says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BuiltIn => "built in",
            Kind::Linked => "linked in",
            Kind::Native => "native",
            Kind::Component => "component",
        }
    }
}

/// One plugin's line in the load report.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The plugin's name.
    pub name: String,
    /// Where it came from (a crate folder, a library, or `linked in`).
    pub source: String,
    /// Which kind it is.
    pub kind: Kind,
    /// What became of it.
    pub status: Status,
    /// The plugins it requires (`export_plugin!(..., requires = [...])`):
    /// it fails when one of them does.
    pub requires: Vec<String>,
    /// Its own tables' migrations.
    pub migrations: &'static [hookspecs::Migration],
    /// Loaded but idle until configured, and what to set
    /// ([`hookspecs::PluginExport::idle`]).
    pub idle: Option<String>,
    /// How many times it was loaded (1 at startup, one more per reload).
    pub generation: u32,
    /// Why its last reload was refused (the previous version runs on),
    /// until a reload succeeds.
    pub reload_error: Option<String>,
}

impl Entry {
    /// A plugin's line with `status`, not (yet) reloaded.
    pub fn new(name: String, source: String, kind: Kind, status: Status) -> Entry {
        let generation = u32::from(status == Status::Loaded);
        Entry {
            name,
            source,
            kind,
            status,
            requires: Vec::new(),
            migrations: &[],
            idle: None,
            generation,
            reload_error: None,
        }
    }

    pub(super) fn status_text(&self) -> String {
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

/// One log line per plugin (a failure at WARN), then the summary: written
/// once startup has settled what became of each plugin.
pub fn log_report(report: &[Entry]) {
    for entry in report {
        let line = format!(
            "plugin {} ({}, {}): {}",
            entry.name,
            entry.kind.as_str(),
            entry.source,
            entry.status_text()
        );
        let line = printable(&line);
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

/// Every plugin, each hook's implementations in call order, every plugin
/// route: what `GET /api/admin/plugins` and `app plugins list` show.
pub fn report(hooks: &PluginManager<dyn AppHooks>, loaded: &[Entry], routes: &[RouteDef]) -> Value {
    let app = Entry::new(
        APP_PLUGIN.into(),
        "built in".into(),
        Kind::BuiltIn,
        Status::Loaded,
    );
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
            // Hooks are matched by name: an entry that failed may share its
            // name with a plugin that did not (`app`, a linked-in one).
            let loaded = entry.status == Status::Loaded;
            let implemented: Vec<&str> = by_hook
                .iter()
                .filter(|(_, impls)| loaded && impls.iter().any(|i| i.plugin == name))
                .map(|(hook, _)| *hook)
                .collect();
            let mut json = json!({"name": name, "kind": entry.kind.as_str(), "source": entry.source, "status": entry.status_text(), "hooks": implemented});
            if entry.kind == Kind::Component {
                json["generation"] = json!(entry.generation);
                json["reload_error"] = json!(entry.reload_error);
            }
            json
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

/// `text` with its control characters escaped (a line break as `\n`), and
/// nothing else changed: a plugin's name or path, which come from file
/// names, printed in a line of the log or of `plugins list` can neither end
/// that line nor forge another.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// What `GET /api/admin/plugins` shows, settled once the plugins started:
/// [`report`], and how often operations were run again after losing a race.
pub struct PluginReport {
    /// The plugins.
    pub hooks: PluginManager<dyn AppHooks>,
    /// What became of each (updated by reloads).
    pub loaded: Entries,
    /// Every route, as requests are matched against them now (a reload
    /// may have replaced a component's).
    pub router: crate::http::router::Live,
    /// Shared with the request pipeline, which counts.
    pub retries: Arc<RetryStats>,
}

impl PluginReport {
    /// The report as it is now.
    pub fn to_json(&self) -> Value {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut json = report(&self.hooks, &loaded, self.router.load().routes());
        json["operations"] = json!({
            "retried": self.retries.retried.load(Relaxed),
            "gave_up": self.retries.gave_up.load(Relaxed),
        });
        json
    }
}
