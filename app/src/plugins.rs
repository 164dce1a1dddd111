//! Plugins in the app: registration (statically linked ones for now), the
//! startup call that lets each add its routes, the app's own built-in
//! plugin (admin token authentication), and the report of what is loaded.

use std::sync::Arc;

use anyhow::anyhow;
use hooks_core::{Plugin, PluginManager, Tier};
use hookspecs::prelude::*;
use hookspecs::{PluginConfigs, RouteDef, RouteTable};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// The name of the app's own plugin.
pub const APP_PLUGIN: &str = "app";

/// The app's own hook implementations: the admin token.
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
}

/// Registers the app's plugin and `plugins`; a name clash is an error.
pub fn register(
    hooks: &PluginManager<dyn AppHooks>,
    admin_token: String,
    plugins: Vec<(String, Plugin<dyn AppHooks>)>,
) -> anyhow::Result<()> {
    hooks.register(APP_PLUGIN, AdminToken::new(admin_token))?;
    for (name, plugin) in plugins {
        hooks
            .register_plugin(&name, plugin)
            .map_err(|e| anyhow!("registering plugin `{name}`: {e}"))?;
    }
    Ok(())
}

/// Calls `on_plugins_loaded` for each plugin that implements it, in call
/// order, each with its own [`Startup`] (its routes go under its name).
pub async fn start(
    hooks: &PluginManager<dyn AppHooks>,
    table: &RouteTable,
    configs: &Arc<PluginConfigs>,
) -> anyhow::Result<()> {
    let names = hooks.plugin_names();
    let starting = hooks.get_hookimpls("on_plugins_loaded").unwrap_or_default();
    for imp in starting.iter().filter(|i| !i.wrapper) {
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != imp.plugin).collect();
        let startup = Startup::new(imp.plugin, table.clone(), configs.clone());
        hooks
            .subset_hook_caller(&others)?
            .on_plugins_loaded(&startup)
            .await
            .map_err(|e| anyhow!("startup failed: {e}"))?;
    }
    Ok(())
}

/// Every plugin, each hook's implementations in call order, every plugin
/// route: what `GET /api/admin/plugins` and `app plugins list` show.
pub fn report(hooks: &PluginManager<dyn AppHooks>, routes: &[RouteDef]) -> Value {
    let plugins: Vec<Value> = hooks
        .plugin_names()
        .into_iter()
        .map(|name| {
            let implemented: Vec<&str> = hooks
                .hookspecs()
                .iter()
                .filter(|spec| {
                    hooks
                        .get_hookimpls(spec.name)
                        .unwrap_or_default()
                        .iter()
                        .any(|i| i.plugin == name)
                })
                .map(|spec| spec.name)
                .collect();
            json!({"name": name, "status": "loaded", "hooks": implemented})
        })
        .collect();
    let calls: serde_json::Map<String, Value> = hooks
        .hookspecs()
        .iter()
        .map(|spec| {
            let impls: Vec<Value> = hooks
                .get_hookimpls(spec.name)
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    let tier = match i.tier {
                        Tier::TryFirst => "tryfirst",
                        Tier::Normal => "normal",
                        Tier::TryLast => "trylast",
                    };
                    json!({"plugin": i.plugin, "priority": i.priority, "tier": tier, "wrapper": i.wrapper})
                })
                .collect();
            (spec.name.to_owned(), Value::Array(impls))
        })
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .filter(|r| r.owner != APP_PLUGIN)
        .map(|r| json!({"method": r.method.as_str(), "path": r.path, "plugin": r.owner}))
        .collect();
    json!({"plugins": plugins, "hooks": calls, "routes": routes})
}
