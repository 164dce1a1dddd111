//! Tracim's sample plugin: logs a greeting when loaded (configurable with
//! `[plugins.hello_world] greeting = "..."`), logs `created user <name>` on
//! every new user, and serves `GET /plugins/hello_world/user`: the acting
//! user.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct HelloWorld;

#[hookimpl]
impl AppHooks for HelloWorld {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let greeting = startup
            .config()
            .and_then(|c| c.get("greeting"))
            .and_then(|g| g.as_str())
            .unwrap_or("Hello, world!");
        tracing::info!(plugin = "hello_world", "{greeting}");
        startup
            .routes()
            .get("/user", |req: PluginRequest| async move {
                let who = req.require_identity()?;
                Ok(json!(who))
            })?;
        Ok(())
    }

    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!(plugin = "hello_world", "created user {}", user.username);
        Ok(())
    }
}

hookspecs::export_plugin!(HelloWorld::default);
