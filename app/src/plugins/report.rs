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
    /// `component` (sandboxed), `native` (a library), or where it came
    /// from otherwise (`built in`, `linked in`): told by its source.
    fn kind(&self) -> &str {
        let component = format!(".{}", super::component::EXTENSION);
        if self.source.ends_with(&component) {
            "component"
        } else if matches!(self.source.as_str(), "built in" | "linked in") {
            &self.source
        } else {
            "native"
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
            entry.kind(),
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
            json!({"name": name, "kind": entry.kind(), "source": entry.source, "status": entry.status_text(), "hooks": implemented})
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

/// What `GET /api/admin/plugins` shows, settled once the plugins started:
/// [`report`], and how often operations were run again after losing a race.
pub struct PluginReport {
    /// The plugins.
    pub hooks: PluginManager<dyn AppHooks>,
    /// What became of each.
    pub loaded: Vec<Entry>,
    /// Every route.
    pub routes: Vec<RouteDef>,
    /// Shared with the request pipeline, which counts.
    pub retries: Arc<RetryStats>,
}

impl PluginReport {
    /// The report as it is now.
    pub fn to_json(&self) -> Value {
        let mut json = report(&self.hooks, &self.loaded, &self.routes);
        json["operations"] = json!({
            "retried": self.retries.retried.load(Relaxed),
            "gave_up": self.retries.gave_up.load(Relaxed),
        });
        json
    }
}
